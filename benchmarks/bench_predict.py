"""Cold ``predict`` of one review (or ``evaluate`` of a labelled file) in a fresh process: wall time per bundle
kind, and what it imported.

Fits logreg bundles on 300 RT texts (GloVe; MiniLM torch; MiniLM onnx; the default; multilingual-e5 and
``multilingual``, routed: English texts through the default, others through e5, and the same with English texts
read by both encoders, under backend auto) into a
temporary directory, then runs ``python -m pipeline predict BUNDLE "<new text>"`` in fresh processes, ``--runs``
rounds that take the bundles in turn (so a change in machine load falls on all of them alike), a new text every
run (so the encoder really runs: an English review, and for the routed bundle a Chinese, a French and a German
one as well), after one untimed warm-up run each (the OS file cache, the GloVe word list
copy, the package's byte-code: ``PYTHONDONTWRITEBYTECODE`` is dropped for the children). Prints the median wall and CPU seconds, which heavy libraries the process imported, and the load
average. Targets: < 1.5 s with an ONNX encoder, < 1 s with GloVe, with mpnet alone under backend auto and with the
default bundle (``multilingual``, routed, as `fit` makes it with no options; either language).

``--command evaluate`` scores ``--texts`` RT test texts instead (their vectors cached by the warm-up run, so
what is timed is everything but the encoder: imports, the bundle's checks, the domain-shift check, the scores).
``--tree DIR`` (repeatable) runs the children on another checkout's ``pipeline`` too, in the same rounds, for a
before/after on one machine load (the bundles are fitted once, by this checkout). ``--use DIR`` (repeatable) times
bundles made beforehand instead of fitting any, e.g. the one of ``review-transfer fit rt --budget 1000 --seed 0``
(a routed one gets the other languages' reviews too).

Run:  .venv/bin/python benchmarks/bench_predict.py [--runs 5] [--bundle "mpnet alone (auto)"]
      [--command evaluate --texts 500] [--tree /tmp/base --tree .] [--use models/rt-multilingual-logreg-b1000-s0]
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

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "skops", "scipy", "pandas", "h5py", "pyarrow",
         "onnxruntime", "openvino")
# the CLI, then the heavy top-level packages left in sys.modules, on stderr's last line
CHILD = f"""
import atexit, sys
atexit.register(lambda: print("imported:", ",".join(m for m in {HEAVY!r} if m in sys.modules) or "-", file=sys.stderr))
sys.argv[0] = "review-transfer"
from pipeline.cli import main
main()
"""




def child_env(tree: Path) -> dict[str, str]:
    """The environment of a child running ``tree``'s code, byte-compiled once (by the warm-up run) as a pip
    install compiles it."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(tree)}


def fit_bundles(work: Path, cache: str, only: list[str]) -> dict[str, Path]:
    from pipeline.data.dataset import load, sample_budget, split
    from pipeline.encoders import get_encoder
    from pipeline.encoders.auto import auto_encoder
    from pipeline.encoders.spec import DEFAULT_ENCODER, ENGLISH_ENCODER
    from pipeline.fit.train import iter_fit

    train = sample_budget(split(load("rt"))[0], 300, seed=0)
    kinds = {"GloVe": lambda: get_encoder("glove-6b-50d", work_dir=cache),
             "MiniLM, onnx": lambda: get_encoder("minilm", backend="onnx", work_dir=cache),
             "MiniLM, torch": lambda: get_encoder("minilm", device="cpu", work_dir=cache),
             # the default's English side alone, under backend auto
             "mpnet alone (auto)": lambda: auto_encoder(ENGLISH_ENCODER, train.texts, {"work_dir": cache})[0],
             "multilingual-e5 (auto)": lambda: auto_encoder("multilingual-e5", train.texts, {"work_dir": cache})[0],
             # routed, English texts read by both encoders (their heads' log-odds summed), each part under backend auto
             "English texts read both (auto)": lambda: auto_encoder(f"{ENGLISH_ENCODER}+multilingual-e5|multilingual-e5",
                                                                   train.texts, {"work_dir": cache})[0],
             # what `fit` makes with no --encoder and no --backend: routed, each side under backend auto
             "default (multilingual, routed, auto)": lambda: auto_encoder(DEFAULT_ENCODER, train.texts,
                                                                         {"work_dir": cache})[0]}
    return {name: next(iter_fit(train, encoder=make(), cache_dir=cache)).save(work / _slug(name))
            for name, make in kinds.items() if not only or name in only}


def new_text(language: str) -> str:
    """A review no cache holds: English, Chinese (``zh``), a short French one (``fr``, no function word the
    older routing checks count) or a short German one (``de``, that the language identifier alone read as English)."""
    if language == "de":
        return f"Schade ums Geld. {time.time_ns()}"
    if language == "zh":
        return f"这部电影太无聊了，第{time.time_ns()}分钟我就睡着了。"
    if language == "fr":
        return f"Quelle perte de temps, vraiment nul. Avis {time.time_ns()}."
    return f"A brand new review, number {time.time_ns()}."


def rows_of(bundles: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    """The table's rows: each bundle with an English review, and a routed one with a Chinese and a French review too."""
    rows = {name: (path, "en") for name, path in bundles.items()}
    for language, said in (("zh", "Chinese"), ("fr", "French"), ("de", "German")):
        rows.update({f"{name}, a {said} review": (path, language) for name, path in bundles.items() if "routed" in name})
    return rows


def run_once(args: list[str], tree: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds of one fresh ``review-transfer ARGS`` process on ``tree``'s code, and the heavy
    packages it imported."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, *args], check=True, capture_output=True, text=True,
                         env=child_env(tree), cwd=tree)  # python -c puts the working directory first on the path
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stderr.strip().splitlines()[-1].removeprefix("imported: ")


def labelled_file(work: Path, n: int) -> str:
    """The first ``n`` texts of RT's test split with their labels, as a JSONL file ``evaluate`` reads."""
    import json

    from pipeline.data.dataset import load, split

    test = split(load("rt"))[1]
    path = work / "rt_test.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": test.label_names[y]}) + "\n"
                            for t, y in zip(test.texts[:n], test.labels[:n])), encoding="utf-8")
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bundle", action="append", dest="only", default=[],
                        help="Only this bundle kind (repeatable), e.g. 'mpnet alone (auto)'.  [default: all]")
    parser.add_argument("--command", choices=("predict", "evaluate"), default="predict")
    parser.add_argument("--texts", type=int, default=500, help="--command evaluate: RT test texts scored.")
    parser.add_argument("--tree", action="append", type=Path, default=[],
                        help="A checkout whose pipeline the children run (repeatable).  [default: this one]")
    parser.add_argument("--use", action="append", type=Path, default=[],
                        help="A bundle made beforehand to time instead of fitting any (repeatable).")
    args = parser.parse_args()
    trees = [t.resolve() for t in args.tree] or [ROOT]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = str(Path(os.environ.get("REVIEW_TRANSFER_CACHE") or work / "cache").resolve())
        made = {_routed_name(p): p.resolve() for p in args.use} or fit_bundles(work, cache, args.only)
        rows = rows_of(made)
        scored = labelled_file(work, args.texts) if args.command == "evaluate" else None

        def command(path: Path, language: str) -> list[str]:
            return [args.command, str(path), scored or new_text(language), "--cache-dir", cache]

        for path, language in rows.values():
            for tree in trees:
                run_once(command(path, language), tree)  # warm-up
        print(f"load average before: {_load()}")
        times: dict[tuple[str, Path], list[tuple[float, float, str]]] = {(n, t): [] for n in rows for t in trees}
        for i in range(args.runs):
            for name, (path, language) in rows.items():
                for tree in trees:
                    times[name, tree].append(run_once(command(path, language), tree))
        print(f"`{args.command}`" + (f" of {args.texts} RT test texts" if scored else " of one new review"))
        print("| bundle | code | wall s (median) | CPU s (median) | heavy imports | runs |")
        print("|---|---|---|---|---|---|")
        for (name, tree), runs in times.items():
            print(f"| {name} | {tree} | {statistics.median(t[0] for t in runs):.2f} | "
                  f"{statistics.median(t[1] for t in runs):.2f} | {runs[-1][2]} | {len(runs)} |")
        print(f"load average after: {_load()}")


def _routed_name(bundle: Path) -> str:
    """A bundle's row name: its folder's, marked routed when its encoder is (so it gets the other languages too)."""
    import json

    spec = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))["encoder"]["spec"]
    return f"{bundle.name}" + (" (routed)" if "|" in spec else "")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
