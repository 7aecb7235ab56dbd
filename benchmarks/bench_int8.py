"""What an int8 export costs in accuracy: paired against fp32, on RT and on shifted targets.

For one transformer encoder (default mpnet), vectors of every RT text and of each target
(:mod:`benchmarks.targets`) come from the cache under two backends: ``--candidate`` (default
``openvino/int8``, what ``backend auto`` runs) and ``--reference`` (default ``openvino/none``, the
fp32 export, whose probe matches torch fp32 at cosine 1.0000; ``torch`` for the torch path itself).
For each budget and seed, one balanced sample of the RT pool trains logistic regression (its CV grid,
as ``fit``) on each backend's vectors; both are scored on the RT test split and on every target, and
the table gives each backend's mean accuracy and the paired difference (candidate - reference, points,
mean ± sd over seeds, and the worst seed). With ``--validation`` the pool is cut by
:func:`pipeline.data.dataset.validation_split` (whole films): samples come from its training part and
are scored on its validation part instead of the test split (for choosing; pass ``NAME-val`` targets). Texts not yet cached are encoded (slow: run under the
CPU lock, once); every later run reads the cache.

Run:  REVIEW_TRANSFER_CACHE=/work/shared-cache python benchmarks/bench_int8.py [--encoder mpnet]
          [--budgets 128,1000] [--seeds 5] [--targets uci-amazon,uci-imdb,uci-yelp] [--encode-only] [--validation]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def encoder(spec: str, name: str, work: str):
    from pipeline.encoders import get_encoder

    backend, _, quantize = name.partition("/")
    options = {"precision": "fp32", "device": "cpu"} if backend == "torch" else {"quantize": quantize or "none"}
    return get_encoder(spec, backend=backend, work_dir=work, **options)


def main() -> None:
    from benchmarks.targets import load_target
    from pipeline.store.cache import EmbeddingCache
    from pipeline.data.dataset import load, sample_budget, split, validation_split
    from pipeline.heads.registry import FitOptions, fit_head
    from pipeline.paths import default_cache_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="mpnet")
    parser.add_argument("--candidate", default="openvino/int8")
    parser.add_argument("--reference", default="openvino/none")
    parser.add_argument("--budgets", default="128,1000")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--targets", default="uci-amazon,uci-imdb,uci-yelp")
    parser.add_argument("--encode-only", action="store_true", help="Fill the cache and stop (split long runs).")
    parser.add_argument("--validation", action="store_true",
                        help="Train on the pool's training part, score on its validation part (not RT test).")
    args = parser.parse_args()
    work = str(default_cache_dir())
    cache = EmbeddingCache(work)
    pool, test = split(load("rt"))
    if args.validation:
        pool, test = validation_split(pool)
    sets = {"RT validation" if args.validation else "RT test": test, **{name: load_target(name) for name in filter(None, args.targets.split(","))}}
    texts = list(dict.fromkeys(pool.texts + [t for ds in sets.values() for t in ds.texts]))
    vectors = {}
    for name in (args.reference, args.candidate):
        enc = encoder(args.encoder, name, work)
        start = time.perf_counter()
        X = cache.vectors(enc, texts)
        print(f"{args.encoder} {name}: {len(texts):,} texts from the cache or encoded in {time.perf_counter() - start:.0f} s "
              f"(fingerprint {enc.fingerprint}; load {_load()})", flush=True)
        vectors[name] = dict(zip(texts, X))
    if args.encode_only:
        return
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"\n{args.encoder}: {args.candidate} vs {args.reference}, logreg (CV grid) on balanced RT pool samples, "
          f"{args.seeds} seeds (0..{args.seeds - 1}); accuracy %, paired difference in points")
    print("| budget | test set | texts | " + f"{args.reference} | {args.candidate} | paired diff (mean ± sd) | worst seed |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for budget in budgets:
        acc = {name: {s: [] for s in sets} for name in vectors}
        for seed in range(args.seeds):
            train = sample_budget(pool, budget, seed)
            for name, table in vectors.items():
                X = np.stack([table[t] for t in train.texts])
                head = fit_head("logreg", X, train.labels, FitOptions(groups=train.groups, seed=seed))
                for set_name, ds in sets.items():
                    pred = head.estimator.predict(np.stack([table[t] for t in ds.texts]))
                    acc[name][set_name].append(float((pred == ds.labels).mean()) * 100)
        for set_name, ds in sets.items():
            ref, cand = np.array(acc[args.reference][set_name]), np.array(acc[args.candidate][set_name])
            diff = cand - ref
            print(f"| {budget:,} | {set_name} | {len(ds):,} | {ref.mean():.2f} | {cand.mean():.2f} | "
                  f"{diff.mean():+.2f} ± {diff.std(ddof=1):.2f} | {diff.min():+.2f} |", flush=True)
    print(f"load average {_load()}")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
