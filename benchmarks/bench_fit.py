"""Stage-two benchmark: fit every head with its grid on the cached MiniLM vectors of RT's pool (10,327 texts).

Prints, per head, the grid search (folds x points) and wall time, then the total and the share of it
spent reading the vectors from the cache, against what encoding them costs (the first run encodes
the pool once, about a minute on 2 cores; later runs read the cache). No hard-coded figures.

Run:  .venv/bin/python benchmarks/bench_fit.py [--encoder minilm] [--jobs 1] [--head NAME ...] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    from pipeline.store.cache import EmbeddingCache, default_cache_dir
    from pipeline.data.dataset import load, split
    from pipeline.encoders import get_encoder
    from pipeline.heads.registry import HEADS, FitOptions, fit_head
    from pipeline.study.tables import format_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--head", action="append", dest="heads", help="head to time (repeatable; default all)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel grid-search fits (-1 = all cores)")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    cache_dir = args.cache_dir or default_cache_dir()

    pool, _ = split(load("rt"))
    encoder, t_load = timed(lambda: get_encoder(args.encoder, work_dir=cache_dir))
    report = EmbeddingCache(cache_dir).fill(encoder, pool.texts)  # encodes only what is missing
    X, t_read = timed(lambda: EmbeddingCache(cache_dir).vectors(encoder, pool.texts))  # all hits now
    print(f"RT pool: {len(pool):,} texts x {X.shape[1]} dims ({encoder.describe()}); encoder built in {t_load:.1f} s")
    print(f"cache: {report.hits:,} hits, {report.misses:,} encoded in {report.seconds:.1f} s; "
          f"reading all {len(pool):,} vectors took {t_read:.2f} s")

    rows, total_fit = [], 0.0
    for name in args.heads or list(HEADS):
        fitted = fit_head(name, X, pool.labels, FitOptions(groups=pool.groups, seed=0, n_jobs=args.jobs))
        total_fit += fitted.fit_seconds
        params = ", ".join(f"{k}={v}" for k, v in fitted.params.items())
        cv = "-" if fitted.cv_accuracy is None else f"{fitted.cv_accuracy:.3f}"
        rows.append((name, fitted.search, params, cv, f"{fitted.fit_seconds:.1f}"))
        print(f"  {name}: {fitted.fit_seconds:.1f} s", flush=True)
    print()
    print(format_table(("head", "search", "chosen", "CV accuracy", "fit s"), rows))
    total = total_fit + t_read
    print()
    print(f"all {len(rows)} heads with their grids: {total_fit:.1f} s fitting + {t_read:.2f} s reading the cache "
          f"= {total:.1f} s wall; cache reads are {100 * t_read / total:.2f}% of it")
    if report.misses:
        per_text = report.seconds / report.misses
        print(f"encoding the pool instead would cost about {per_text * len(pool):.1f} s "
              f"({per_text * len(pool) / max(t_read, 1e-9):,.0f}x the cache read) every time")
    print(f"mean fit per head: {np.mean([float(r[-1]) for r in rows]):.1f} s (--jobs {args.jobs})")


if __name__ == "__main__":
    main()
