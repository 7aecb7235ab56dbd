"""Static int8 calibration recipes of the default encoder (``pipeline.encoders.calibration``) by text length.

1. ``--probe [--spec SPEC]``: per-text cosine to torch fp32 of the static int8 export under each recipe, on RT validation
   texts of 1, 5 and 14 snippets joined (about 18, 92 and 253 words; never the test split): what ``backend
   auto``'s guard reads (median >= 0.99), with the min and 5th percentile.
2. ``--speeds``: texts/s of each recipe's export and of the int8-weight export (what ``auto`` ran where the
   static probe failed), side by side in one process (rounds alternating the order),
   on RT test texts of 1, 5 and 14 snippets joined (speed only), through an empty embedding cache.
3. ``--user``: what a user waits, in fresh processes with an empty embedding cache beside the models and the
   default's static int8 export (what a first ``fit`` on RT leaves): ``review-transfer embed long.csv`` (150
   texts of 5 same-label RT test snippets, about 92 words; ``backend auto`` probes them) and ``review-transfer
   evaluate BUNDLE long.csv``, under the code in ``--code`` (a checkout; default this one), the export copied
   fresh each time.

Run:  REVIEW_TRANSFER_CACHE=/work/shared-cache PYTHONPATH=. python benchmarks/bench_calibration.py --probe
      REVIEW_TRANSFER_CACHE=/work/shared-cache PYTHONPATH=. python benchmarks/bench_calibration.py --speeds
      REVIEW_TRANSFER_CACHE=/work/shared-cache PYTHONPATH=. python benchmarks/bench_calibration.py --user \\
          --bundle models/BUNDLE --code /path/to/checkout
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

SPEC = "mpnet[layers=9-12]"
RECIPES = ("rt-a95", "rt-a75")
JOINS = {1: 600, 5: 160, 14: 48}  # snippets per text -> texts timed (--speeds)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def joined(texts: list[str], k: int, n: int) -> list[str]:
    """``n`` texts of ``k`` consecutive ``texts`` joined."""
    return [" ".join(texts[i * k:(i + 1) * k]) for i in range(min(n, len(texts) // k))]


def static(recipe: str, spec: str = SPEC) -> object:
    from pipeline.encoders import get_encoder

    return get_encoder(spec, backend="openvino", quantize="int8-static", calibration=recipe)


def probe_table(spec: str = SPEC) -> None:
    from pipeline.data.dataset import load, split, validation_split
    from pipeline.encoders import get_encoder
    from pipeline.encoders.probe import cosines, sample_texts

    val = validation_split(split(load("rt"))[0])[1].texts
    sets = {1: sample_texts(val, 256, words=10**9), 5: joined(val, 5, 128), 14: joined(val, 14, 64)}
    reference = get_encoder(spec, backend="torch", precision="fp32", device="cpu")
    print(f"probe: {spec} static int8 vs torch fp32 on RT validation texts; load {_load()}")
    print("| recipe | " + " | ".join(f"{k} snippet(s), {np.mean([len(t.split()) for t in v]):.0f} words, {len(v)} texts"
                                    for k, v in sets.items()) + " |")
    print("|---|" + "---:|" * len(sets))
    want = {k: reference.encode(v) for k, v in sets.items()}
    for recipe in RECIPES:
        enc = static(recipe, spec)
        cells = []
        for k, v in sets.items():
            c = cosines(enc.encode(v), want[k])
            cells.append(f"{np.median(c):.4f} (min {c.min():.4f}, p5 {np.percentile(c, 5):.4f})")
        print(f"| {recipe} | " + " | ".join(cells) + " |", flush=True)
    print(f"median (min, 5th percentile) cosine; load {_load()}")


def speed_table(rounds: int) -> None:
    from pipeline.data.dataset import load, split
    from pipeline.store.cache import EmbeddingCache

    from pipeline.encoders import get_encoder

    test = split(load("rt"))[1].texts
    encoders = {r: static(r) for r in RECIPES}
    encoders["int8 weights"] = get_encoder(SPEC, backend="openvino", quantize="int8")  # auto's next candidate
    names = list(encoders)
    print(f"speeds: {SPEC} static int8 by recipe, and int8 weights, RT test texts, {rounds} rounds; load {_load()}")
    print("| snippets per text | words | texts | " + " | ".join(names) + " | rt-a75 / rt-a95 |")
    print("|---:|---:|---:|" + "---:|" * (len(names) + 1))
    for k, n in JOINS.items():
        texts = joined(test, k, n)
        seconds = dict.fromkeys(names, 0.0)
        for enc in encoders.values():
            enc.encode(texts[:8])  # sessions, tokenizer
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                with tempfile.TemporaryDirectory() as tmp:
                    start = time.perf_counter()
                    EmbeddingCache(tmp, progress=False).vectors(encoders[name], texts)
                    seconds[name] += time.perf_counter() - start
        rates = [rounds * len(texts) / seconds[n] for n in names]
        words = np.mean([len(t.split()) for t in texts])
        print(f"| {k} | {words:.0f} | {len(texts)} | " + " | ".join(f"{x:.1f}" for x in rates)
              + f" | {rates[1] / rates[0]:.2f}x |", flush=True)
    print(f"texts/s; load {_load()}")


def long_csv(path: Path, n: int = 150, k: int = 5) -> None:
    """``n`` labelled texts of ``k`` same-label RT test snippets joined."""
    from pipeline.data.dataset import load, split

    test = split(load("rt"))[1]
    rows = []
    for label in (1, 0):
        same = [t for t, y in zip(test.texts, test.labels) if y == label]
        rows += [(t, label) for t in joined(same, k, n // 2)]
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *rows])


def user_runs(bundle: Path, code: Path) -> None:
    """``embed`` and ``evaluate`` of long.csv in fresh processes under ``code``, each in an empty cache."""
    from pipeline.paths import default_cache_dir

    shared = default_cache_dir()
    env = {**os.environ, "PYTHONPATH": str(code)}
    exe = Path(os.environ.get("VIRTUAL_ENV", "/work/main/.venv")) / "bin" / "review-transfer"
    print(f"user: code {code} ({subprocess.run(['git', '-C', str(code), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}), bundle {bundle}; load {_load()}")
    static_dir = subprocess.run([str(exe.parent / "python"), "-c", (  # run in ``code``: python -c puts the cwd first
        f"from pipeline.encoders import get_encoder; print(get_encoder('{SPEC}', backend='openvino', "
        "quantize='int8-static').export_dir)")],
        env=env, capture_output=True, text=True, check=True, cwd=code).stdout.strip().splitlines()[-1]
    for command in (["embed", "{csv}"], ["evaluate", str(bundle), "{csv}"]):
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache"
            (cache / "exports").mkdir(parents=True)
            os.symlink(shared / "models", cache / "models")
            for name in ("mpnet-layers",):
                if (shared / name).exists():
                    os.symlink(shared / name, cache / name)
            shutil.copytree(static_dir, cache / "exports" / Path(static_dir).name,
                            ignore=shutil.ignore_patterns(".compiled"))
            long_csv(Path(tmp) / "long.csv")
            args = [a.replace("{csv}", str(Path(tmp) / "long.csv")) for a in command]
            start = time.perf_counter()
            out = subprocess.run([str(exe), *args], env={**env, "REVIEW_TRANSFER_CACHE": str(cache)},
                                 capture_output=True, text=True, cwd=tmp)
            wall = time.perf_counter() - start
            said = [line for line in (out.stdout + out.stderr).splitlines() if "backend auto" in line or "accuracy" in line
                    or "exporting" in line or "refused" in line]
            made = sorted(p.name for p in (cache / "exports").iterdir() if p.name != Path(static_dir).name)
            print(f"  {command[0]}: {wall:.1f} s wall, rc {out.returncode}; exports made: {made or 'none'}; load {_load()}")
            for line in said[:6]:
                print(f"    {line.strip()[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--spec", default=SPEC, help="--probe: the encoder (default: the default encoder)")
    parser.add_argument("--speeds", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--user", action="store_true")
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    if args.probe:
        probe_table(args.spec)
    if args.speeds:
        speed_table(args.rounds)
    if args.user:
        if args.bundle is None:
            parser.error("--user needs --bundle")
        user_runs(args.bundle.resolve(), args.code.resolve())


if __name__ == "__main__":
    main()
