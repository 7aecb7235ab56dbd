"""Where the second of a cold ``predict`` of one review goes: each load timed in a fresh process.

Runs ``review-transfer predict BUNDLE "<new review>"`` in fresh processes (``--runs`` each, after one untimed
warm-up that byte-compiles the code and fills the OS file cache), with timers around the imports and around each
load on the way: the bundle (manifest, file digests, head, encoder), the language check (fastText's model, the word
lists), the tokenizer, ``import openvino``, the session (``compile_model``, from the compiled-model cache), and the
encode; the rest of the encode is the first inference. Prints, per step, the median start and length in seconds
from the process's start (steps in a background thread are marked so), the median wall time, and the load average.

Run:  .venv/bin/python benchmarks/bench_predict_steps.py BUNDLE [--runs 5] [--language en|fr|zh] [--text TEXT] [--tree DIR]
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The child: imports timed one by one, then the loads wrapped in timers; marks printed on stderr at exit.
CHILD = r"""
import atexit, functools, sys, threading, time
T0 = float(sys.argv.pop(1))
marks = []
def mark(name, start):
    thread = "" if threading.current_thread() is threading.main_thread() else " (thread)"
    marks.append((name + thread, start - T0, time.time() - start))
def timed(owner, attr, name):
    f = getattr(owner, attr)
    @functools.wraps(f)
    def wrapper(*a, **k):
        start = time.time()
        try:
            return f(*a, **k)
        finally:
            mark(name, start)
    setattr(owner, attr, wrapper)
atexit.register(lambda: print("MARKS", repr(marks), file=sys.stderr))
mark("interpreter and site", T0)
for name in ("click", "numpy", "pipeline.cli", "pipeline.predict.predict"):
    start = time.time(); __import__(name); mark("import " + name, start)
from pipeline.bundle import bundle
from pipeline.encoders import identify, lexicon, onnx
timed(bundle.Bundle, "load", "bundle: manifest, digests, head, encoder")
timed(identify, "_model", "language: fastText model")
timed(lexicon, "frequencies", "language: word lists")
timed(onnx.ExportedEncoder, "_encode", "encode (all of it)")
timed(onnx.ExportedEncoder, "_load_tokenizer", "tokenizer")
timed(onnx, "runtime_openvino", "import openvino")
timed(onnx, "load_session", "session (compile_model)")
sys.argv[0] = "review-transfer"
from pipeline.cli import main
main()
"""


def review(language: str) -> str:
    """A review no cache holds."""
    stamp = time.time_ns()
    return {"fr": f"Quelle perte de temps, vraiment nul. Avis {stamp}.",
            "zh": f"这部电影太无聊了，第{stamp}分钟我就睡着了。"}.get(language, f"A brand new review, number {stamp}.")


def run_once(bundle: Path, text: str, tree: Path, cache: str | None) -> tuple[float, list[tuple[str, float, float]]]:
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(tree)}
    extra = ["--cache-dir", cache] if cache else []
    start = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, repr(start), "predict", str(bundle), text, *extra],
                         check=True, capture_output=True, text=True, env=env, cwd=tree)
    wall = time.time() - start
    line = next(x for x in out.stderr.splitlines() if x.startswith("MARKS "))
    return wall, ast.literal_eval(line.removeprefix("MARKS "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--language", choices=("en", "fr", "zh"), default="en")
    parser.add_argument("--text", default=None, help="The review to predict.  [default: a new one in --language]")
    parser.add_argument("--tree", type=Path, default=ROOT, help="The checkout whose pipeline runs.  [default: this one]")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    def text() -> str:
        return args.text or review(args.language)

    run_once(args.bundle, text(), args.tree, args.cache_dir)  # warm-up
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    walls, steps = [], {}
    for _ in range(args.runs):
        wall, marks = run_once(args.bundle, text(), args.tree, args.cache_dir)
        walls.append(wall)
        for name, start, length in marks:
            steps.setdefault(name, []).append((start, length))
    print("| step | starts at s | takes s |")
    print("|---|---:|---:|")
    for name, seen in sorted(steps.items(), key=lambda kv: statistics.median(s for s, _ in kv[1])):
        print(f"| {name} | {statistics.median(s for s, _ in seen):.3f} | {statistics.median(n for _, n in seen):.3f} |")
    print(f"| wall (median of {args.runs}) | | {statistics.median(walls):.3f} |")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
