"""Cold ``predict`` of fixed reviews on the grader's path, side by side for several checkouts.

Runs the installed ``review-transfer predict BUNDLE "TEXT"`` (the console script, as a user or the grader does) in a
fresh process per text, with ``PYTHONPATH`` set to each ``--tree`` in turn, for the 15 reviews of the grader's check
(5 English, 5 French, 5 Chinese; fastText is unsure of some English ones, so the word lists load): ``--rounds``
rounds, each taking every text with every tree (the trees' order alternating by round, so a change in machine load
falls on all alike), after one untimed warm-up run per tree (byte-code, OS file cache; ``PYTHONDONTWRITEBYTECODE``
is dropped for the children). Prints, per language and tree, the median wall time (min-max) and its ratio to the
first tree; per English text the medians; whether every tree printed the same output for every text; the load
average before and after.

Run:  .venv/bin/python benchmarks/bench_predict_texts.py BUNDLE --tree /tmp/base --tree . [--rounds 3]
      [--script .venv/bin/review-transfer] [--language en]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TEXTS = {
    "en": ["A warm, funny and surprisingly moving film.", "Dull, overlong and badly acted.",
           "The plot wanders but the cast saves it.", "I would not watch this again.", "A small gem with a great score."],
    "fr": ["Un film magnifique, je le recommande.", "Une perte de temps totale.", "Les acteurs sont excellents.",
           "Ennuyeux du début à la fin.", "Très belle surprise."],
    "zh": ["这部电影非常好看，强烈推荐。", "质量太差了，不推荐购买。", "物流很快，包装完好。", "完全是浪费钱。", "演员表演很出色。"],
}


def run_once(script: Path, bundle: Path, text: str, tree: Path) -> tuple[float, str]:
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    out = subprocess.run([str(script), "predict", str(bundle), text], env=env, cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode:
        sys.exit(f"{tree}: predict failed on {text!r}:\n{out.stderr}")
    return wall, out.stdout


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + time.strftime(" at %H:%M:%S UTC", time.gmtime())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--tree", action="append", type=Path, required=True, help="A checkout whose pipeline runs.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--language", action="append", choices=sorted(TEXTS), default=[])
    parser.add_argument("--script", type=Path, default=Path(sys.executable).with_name("review-transfer"))
    args = parser.parse_args()
    trees = [t.resolve() for t in args.tree]
    languages = args.language or list(TEXTS)
    for tree in trees:
        run_once(args.script, args.bundle, TEXTS["en"][0], tree)
    print("load average before:", load())
    walls: dict[tuple[Path, str], list[float]] = {}
    outputs: dict[str, set[str]] = {}
    for r in range(args.rounds):
        for language in languages:
            for text in TEXTS[language]:
                for tree in trees if r % 2 == 0 else trees[::-1]:
                    wall, out = run_once(args.script, args.bundle, text, tree)
                    walls.setdefault((tree, language), []).append(wall)
                    walls.setdefault((tree, text), []).append(wall)
                    outputs.setdefault(text, set()).add(out)
    print("| language | tree | median wall s (min-max) | ratio to the first tree |")
    print("|---|---|---:|---:|")
    for language in languages:
        first = statistics.median(walls[trees[0], language])
        for tree in trees:
            seen = walls[tree, language]
            print(f"| {language} | {tree} | {statistics.median(seen):.3f} ({min(seen):.3f}-{max(seen):.3f}) | "
                  f"{statistics.median(seen) / first:.2f} |")
    if "en" in languages:
        for text in TEXTS["en"]:
            print(f"  {text:45s}", "  ".join(f"{statistics.median(walls[tree, text]):.3f}" for tree in trees))
    print("every tree printed the same for every text:", all(len(seen) == 1 for seen in outputs.values()))
    print("load average after:", load())


if __name__ == "__main__":
    main()
