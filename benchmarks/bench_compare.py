"""Benchmark ``compare``: wall time of a heads x budgets x seeds grid on ~10k cached vectors.

Prints the wall time of the grid (target on 2 cores: < 60 s for 5 heads x 8 budgets x 10 seeds) and
the share of it spent getting vectors on a warm cache (target: about 0). The first run warms the
cache (MiniLM over all RT texts takes a few minutes on CPU); the timed run starts from a fresh
results directory so every cell is fitted. ``--prompts both`` times the grid without the linear
heads' prompt prior, then with it (the default), and prints the ratio.

    python benchmarks/bench_compare.py [--encoder minilm] [--seeds 10] [--jobs 2] [--prompts default|none|both]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from pipeline.store.cache import EmbeddingCache, default_cache_dir
from pipeline.study.compare import Execution, StudyPlan, run_compare
from pipeline.data.dataset import load, parse_budgets, split
from pipeline.encoders import get_encoder
from pipeline.heads.prompts import DEFAULT as DEFAULT_PROMPTS

HEADS = ["logreg", "linear-svm", "ridge", "knn", "nb"]
BUDGETS = "16,32,64,128,256,512,1000,all"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--heads", default=",".join(HEADS))
    parser.add_argument("--budgets", default=BUDGETS)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--prompts", choices=("default", "none", "both"), default="default")
    args = parser.parse_args()

    ds = load("rt")
    pool, test = split(ds)
    cache_dir = default_cache_dir()
    start = time.perf_counter()
    EmbeddingCache(cache_dir).vectors(get_encoder(args.encoder), pool.texts + test.texts)
    print(f"warm-up: {args.encoder} vectors of {len(ds)} texts ready in {time.perf_counter() - start:.1f} s")

    heads = args.heads.split(",")
    budgets = parse_budgets(args.budgets)
    walls = {}
    for setting in ("none", "default") if args.prompts == "both" else (args.prompts,):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            plan = StudyPlan(encoders=[args.encoder], heads=heads, budgets=budgets, seeds=args.seeds,
                             prompts=DEFAULT_PROMPTS if setting == "default" else None)
            rows = run_compare(ds, plan, Execution(out=out, cache_dir=cache_dir, jobs=args.jobs, progress=False))
            walls[setting] = wall = time.perf_counter() - start
        print(f"--prompts {setting}: wall time {wall:.1f} s")
    if len(walls) == 2:
        print(f"with the prompt prior / without: {walls['default'] / walls['none']:.2f}x")
    encode = sum(r["encode_seconds"] for r in rows)  # amortised shares add up to the run's encode time
    fit = sum(r["fit_seconds"] for r in rows)
    print(f"grid: {len(heads)} heads x {len(budgets)} budgets x {args.seeds} seeds = {len(rows)} cells, "
          f"pool {len(pool)} texts, {args.jobs} jobs")
    print(f"wall time            {wall:8.1f} s   (target < 60 s)")
    print(f"vectors from cache   {encode:8.2f} s   share {encode / wall:.2%} (target ~ 0)")
    print(f"sum of fit times     {fit:8.1f} s   parallel speed-up {fit / wall:.2f}x")
    for head in heads:
        secs = [r["fit_seconds"] for r in rows if r["head"] == head]
        print(f"  {head:12s} {sum(secs):8.1f} s over {len(secs)} cells")


if __name__ == "__main__":
    main()
