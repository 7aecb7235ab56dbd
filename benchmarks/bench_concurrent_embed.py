"""Two ``embed`` runs of the same texts into one fresh cache at once: texts each encoded, wall time of the pair.

Both runs start together (a ready file each, then a shared start) on the first ``--texts`` RT texts, in a CSV,
through ``python -m pipeline embed`` with the code on ``PYTHONPATH`` (this checkout), and, with ``--baseline DIR``,
the same pair again with the code in DIR (a checkout of an earlier commit), side by side in one run. What each
run encoded is its misses less the rows it says another run stored meanwhile (``embed``'s summary line).

Run:  PYTHONPATH=. .venv/bin/python benchmarks/bench_concurrent_embed.py --baseline /path/to/old/checkout
      (--encoder minilm --backend torch by default: slow enough per text to see the sharing)
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTER = """
import os, sys, time
from pipeline.cli import main
ready, go = sys.argv[1], sys.argv[2]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
main(sys.argv[3:])
"""


def run_pair(code: str, source: Path, cache: Path, args: list[str]) -> tuple[float, list[int], list[int]]:
    """Wall seconds of two concurrent ``embed`` runs with the code in ``code`` (run from ``cache``, so that ``python
    -c`` finds no other checkout first), and each run's misses and texts encoded."""
    env = {**os.environ, "PYTHONPATH": code}
    flags = [cache / f"ready{i}" for i in range(2)]
    go = cache / "go"
    cache.mkdir(parents=True)
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, str(flag), str(go), "embed", str(source),
                               "--cache-dir", str(cache), *args], env=env, cwd=cache, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for flag in flags]
    while not all(flag.exists() for flag in flags):
        time.sleep(0.005)
    start = time.perf_counter()
    go.touch()
    outs = [p.communicate() for p in procs]
    wall = time.perf_counter() - start
    if any(p.returncode for p in procs):
        raise SystemExit("\n".join(err[-2000:] for _, err in outs))
    misses = [int(re.search(r"hits, ([\d,]+) misses", out).group(1).replace(",", "")) for out, _ in outs]
    reused = [int(m.group(1).replace(",", "")) if (m := re.search(r"([\d,]+) of the misses were stored", out)) else 0
              for out, _ in outs]
    return wall, misses, [m - r for m, r in zip(misses, reused)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--baseline", help="a checkout of the code to compare with (its repository root)")
    opts = parser.parse_args()

    from pipeline.data.dataset import load

    texts = load("rt").texts[: opts.texts]
    args = ["--encoder", opts.encoder, "--backend", opts.backend, "--chunk-size", str(opts.chunk_size)]
    with tempfile.TemporaryDirectory(prefix="bench-concurrent-") as tmp:
        source = Path(tmp) / "texts.csv"
        with open(source, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text"])
            writer.writerows([t] for t in texts)
        codes = [("this checkout", os.environ.get("PYTHONPATH", "."))]
        if opts.baseline:
            codes.insert(0, ("baseline", opts.baseline))
        walls = {}
        print(f"{len(texts)} texts, {' '.join(args)}, two runs at once into a fresh cache, "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        for name, code in codes:
            wall, misses, encoded = run_pair(os.path.abspath(code), source, Path(tmp) / name.replace(" ", "-"), args)
            walls[name] = wall
            print(f"{name:14s} wall {wall:6.1f} s  misses {misses}  encoded {encoded} "
                  f"({sum(encoded) / len(texts):.2f}x the texts)")
        if opts.baseline:
            print(f"wall ratio this checkout / baseline: {walls['this checkout'] / walls['baseline']:.2f}")
        print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
