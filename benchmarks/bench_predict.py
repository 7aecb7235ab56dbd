"""Cold ``predict`` of one review in a fresh process: wall time per bundle kind, and whether torch was imported.

Fits three logreg bundles on 300 RT texts (GloVe; MiniLM torch; MiniLM onnx) into a temporary directory,
then runs ``python -m pipeline predict BUNDLE "<new text>"`` ``--runs`` times each in fresh processes (a
new text every run, so the encoder really runs), and prints the median wall time, the CPU time and the load
average. Targets (issue 19): < 1.5 s with an ONNX encoder, < 1 s with GloVe.

Run:  .venv/bin/python benchmarks/bench_predict.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def fit_bundles(work: Path, cache: str) -> dict[str, Path]:
    from pipeline.data import load, sample_budget, split
    from pipeline.encoders import get_encoder
    from pipeline.train import iter_fit

    train = sample_budget(split(load("rt"))[0], 300, seed=0)
    kinds = {"glove": get_encoder("glove-6b-50d"), "minilm torch": get_encoder("minilm", device="cpu"),
             "minilm onnx": get_encoder("minilm", backend="onnx", work_dir=cache)}
    return {name: next(iter_fit(train, encoder=enc, cache_dir=cache)).save(work / name.replace(" ", "-"))
            for name, enc in kinds.items()}


def run_once(bundle: Path, cache: str, i: int) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh ``predict`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "predict", str(bundle), f"A brand new review, number {i}.",
                    "--cache-dir", cache], check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = os.environ.get("REVIEW_TRANSFER_CACHE") or str(work / "cache")
        bundles = fit_bundles(work, cache)
        print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print("| bundle | wall s (median) | CPU s (median) | runs |")
        print("|---|---|---|---|")
        for name, path in bundles.items():
            times = [run_once(path, cache, time.time_ns() + i) for i in range(args.runs)]
            print(f"| {name} | {statistics.median(t[0] for t in times):.2f} | "
                  f"{statistics.median(t[1] for t in times):.2f} | {args.runs} |")
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
