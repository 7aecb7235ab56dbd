"""Benchmark the prompt prior: a head fitted on RT with and without it, scored in domain and on other sites.

For each encoder, budget and seed, one balanced sample of RT's pool is drawn (as ``compare`` draws it)
and ``logreg`` (or ``--head``) is fitted on it twice, as ``fit`` does: with the default prompts of
:mod:`pipeline.heads.prompts` and with ``--prompts none``. Both are scored on RT's held-out split
(``--split test``, or ``validation``: a quarter of the pool's films, training on the rest) and on
every shifted target of ``benchmarks/targets.py`` (other sites, product kinds and text lengths; their
labels are only read to score). Prints, per encoder, budget and evaluation set, the mean accuracy
without the prompts and the paired difference with them (mean ± its standard error over the
seeds), then how far each one's worst seed falls below its mean on RT.

    PYTHONPATH=. python benchmarks/bench_prompts.py [--split test|validation] [--encoders minilm,mpnet]
        [--budgets 16,32,64,128,256,1000] [--seeds 10] [--head logreg] [--targets uci-amazon,...]
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np
from bench_selection import data
from targets import TARGETS, load_target

from pipeline.store.cache import EmbeddingCache, default_cache_dir
from pipeline.data.dataset import budget_indices
from pipeline.encoders import get_encoder
from pipeline.heads.registry import FitOptions, fit_head


def accuracies(head: str, budget: int, seed: int, pool, X_pool: np.ndarray, evals: dict, u: np.ndarray) -> np.ndarray:
    """Accuracy (points) on each evaluation set, shape (2, sets): without, then with the prompt prior."""
    idx = budget_indices(pool, budget, seed)
    groups = [pool.groups[i] for i in idx]
    fits = [fit_head(head, X_pool[idx], pool.labels[idx], FitOptions(groups=groups, seed=seed, prompt_direction=d))
            for d in (None, u)]
    return np.array([[100 * float((f.estimator.predict(X) == y).mean()) for X, y in evals.values()] for f in fits])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--encoders", default="minilm,mpnet")
    parser.add_argument("--budgets", default="16,32,64,128,256,1000")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--head", default="logreg")
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args()
    budgets, names = [int(b) for b in args.budgets.split(",")], [t for t in args.targets.split(",") if t]

    start = time.perf_counter()
    print(f"{args.head} fitted on RT's pool, {args.seeds} seeds; accuracy in points without the prompts, and the "
          f"paired gain with them (± SE); RT scored on its {args.split} split")
    for encoder in args.encoders.split(","):
        pool, X_pool, y_eval, X_eval, u = data(args.split, encoder)
        cache, enc = EmbeddingCache(default_cache_dir()), get_encoder(encoder)
        evals = {"rt": (X_eval, y_eval)}
        for name in names:
            target = load_target(name)
            evals[name] = (cache.vectors(enc, target.texts), target.labels)
        print(f"\n{encoder}: " + "  ".join(f"{name} ({len(y):,})" for name, (_, y) in evals.items()))
        print(f"{'labels':>6}  " + "  ".join(f"{name:>16s}" for name in evals) + "  RT worst-seed drop: without, with")
        for b in budgets:
            runs = np.stack([accuracies(args.head, b, s, pool, X_pool, evals, u) for s in range(args.seeds)])
            without, gain = runs[:, 0], runs[:, 1] - runs[:, 0]
            se = gain.std(axis=0, ddof=1) / np.sqrt(args.seeds)
            cells = [f"{without[:, i].mean():4.1f} {gain[:, i].mean():+4.1f}±{se[i]:3.1f}" for i in range(len(evals))]
            drops = [r.mean() - r.min() for r in (runs[:, 0, 0], runs[:, 1, 0])]
            print(f"{b:>6}  " + "  ".join(f"{c:>16s}" for c in cells) + f"  {drops[0]:4.1f}, {drops[1]:4.1f}")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nwall time {time.perf_counter() - start:.0f} s; uptime: {load}")


if __name__ == "__main__":
    main()
