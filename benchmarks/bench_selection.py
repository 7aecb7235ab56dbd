"""Benchmark head selection: accuracy per budget and head, before and after, beside a fixed-C baseline.

For each encoder, budget and seed, one balanced sample of the pool is drawn (as ``compare`` draws it)
and every head is fitted on it twice: with the selection of ``pipeline.heads.registry`` as it is now
("after") and with the rule it replaced ("before": one K-fold split, the best mean, the old grids,
always standardised, Platt's intercept free; rebuilt here from parameters and fitted by today's ``fit_head``, so it shares
its guard against one-class calibration and its cap of knn's k at the training folds' size).
Beside them, an unscaled ``LogisticRegression(C=1)`` on the same sample (the fixed-C baseline), and
"oracle C": ``logreg`` at the best point of its grid for each sample, picked on the evaluation split
itself (an upper bound no selection rule reaches; its spread over seeds is what the label sample
alone moves). "After" is fitted twice more: as ``fit`` does by default, with the prompt prior of
:mod:`pipeline.heads.prompts` (linear heads), and without it (``--prompts none``). Prints, per encoder, head
and budget, the mean, the sd and the worst seed of each (in accuracy points), how far the worst seed
falls below its mean, and after (with prompts) minus before, minus the baseline and minus after without
prompts, and after without prompts minus before and minus the baseline, on the same samples (paired: the
mean of the per-seed differences and its standard error over the seeds).

``--split test`` (default) scores on RT's held-out test split. ``--split validation`` holds out a
quarter of the pool's films (by a hash of the film) and scores on them, training on the rest: the
split on which the selection was designed, so the test split is never used to tune it.

    python benchmarks/bench_selection.py [--split test|validation] [--encoders minilm,glove-6b-50d]
        [--heads logreg,linear-svm,ridge,knn] [--budgets 16,32,64,128,256,512,1000] [--seeds 10] [--jobs 2]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import time
from dataclasses import replace

import numpy as np

from pipeline.heads import prompts
from pipeline.heads.registry import HEADS, FitOptions, HeadSpec, Selection, build_head, fit_head, normalized_spread, plan_folds, unit_rows

# the rule before: one K-fold split, the best mean, these grids and defaults, always standardised
BEFORE = Selection(max_repeats=1, one_se=0.0, keep_default_se=0.0)
BEFORE_GRIDS = {
    "logreg": ({"C": [0.001, 0.01, 0.1, 1.0]}, {"C": 0.1}),
    "linear-svm": ({"C": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]}, {"C": 1e-3}),
    "ridge": ({"alpha": [1.0, 10.0, 100.0, 1000.0, 10000.0]}, {"alpha": 100.0}),
    "knn": ({"n_neighbors": [5, 15, 45]}, {"n_neighbors": 15}),
}
VALIDATION_SHARE = 4  # --split validation holds out the pool's films with sha256("val:" + film) % 4 == 0


def before_spec(name: str) -> HeadSpec:
    """Head ``name`` as it was selected before: its old grid and default, standardised even on unit rows
    (knn: L2-normalised and uncalibrated, as it was), Platt's intercept free."""
    spec = HEADS[name]
    grid, default = BEFORE_GRIDS.get(name, (spec.grid, spec.default))
    return replace(spec, grid=grid, default=default, scale=spec.scale or not spec.normalize, spread_scaled=None,
                   platt_intercept_weight=0.0, unit_default=None, calibrate=spec.calibrate and name != "knn")


def data(split_name: str, encoder: str):
    """(training pool, its vectors, evaluation labels, their vectors, prompt direction) for ``--split``."""
    from pipeline.store.cache import EmbeddingCache, default_cache_dir
    from pipeline.data.dataset import load, split
    from pipeline.encoders import get_encoder

    pool, test = split(load("rt"))
    enc = get_encoder(encoder)
    vectors = EmbeddingCache(default_cache_dir()).vectors(enc, pool.texts + test.texts)
    u = prompts.encoded_direction(prompts.DEFAULT, enc, default_cache_dir())
    X_pool, X_test = vectors[: len(pool)], vectors[len(pool):]
    if split_name == "test":
        return pool, X_pool, test.labels, X_test, u
    held = np.array([int(hashlib.sha256(f"val:{g}".encode()).hexdigest(), 16) % VALIDATION_SHARE == 0
                     for g in pool.groups])
    return pool.subset(np.flatnonzero(~held)), X_pool[~held], pool.labels[held], X_pool[held], u


def cell(budget: int, seed: int, pool, X_pool, y_eval, X_eval, u, heads: list[str]) -> dict:
    """Accuracy (points) of each head before, after (without and with the prompt prior along ``u``), and of
    the fixed-C baseline, on one sample."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from pipeline.data.dataset import budget_indices

    idx = budget_indices(pool, budget, seed)
    X, y, groups = X_pool[idx], pool.labels[idx], [pool.groups[i] for i in idx]
    acc = lambda est: 100 * float((est.predict(X_eval) == y_eval).mean())  # noqa: E731
    out = {}
    with threadpool_limits(1):
        out["baseline"] = acc(LogisticRegression(C=1.0, max_iter=2000).fit(X, y))
        unit = unit_rows(X)
        grid = (HEADS["logreg"] if unit else HEADS["logreg"].for_rows(False, normalized_spread(X))).grid["C"]
        out["oracle"] = max(acc(build_head("logreg", {"C": c}, unit=unit).fit(X, y)) for c in grid)
    before_folds, after_folds = plan_folds(y, groups, seed, BEFORE), plan_folds(y, groups, seed)
    for name in heads:
        old = fit_head(before_spec(name), X, y, FitOptions(groups=groups, seed=seed, folds=before_folds),
                       selection=BEFORE)
        new = fit_head(name, X, y, FitOptions(groups=groups, seed=seed, folds=after_folds))
        prompted = fit_head(name, X, y, FitOptions(groups=groups, seed=seed, folds=after_folds, prompt_direction=u))
        out[name] = (acc(old.estimator), acc(new.estimator), acc(prompted.estimator),
                     new.fit_seconds / max(old.fit_seconds, 1e-9))
    return out


def summary(values: np.ndarray) -> str:
    return f"{values.mean():5.1f} {values.std():4.1f} {values.min():5.1f} {values.mean() - values.min():4.1f}"


def paired(diff: np.ndarray) -> str:
    """Mean of per-seed differences and its standard error."""
    return f"{diff.mean():+5.1f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):3.1f}"


def main() -> None:
    from joblib import Parallel, delayed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--encoders", default="minilm,glove-6b-50d")
    parser.add_argument("--heads", default="logreg,linear-svm,ridge,knn")
    parser.add_argument("--budgets", default="16,32,64,128,256,512,1000")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    heads, budgets = args.heads.split(","), [int(b) for b in args.budgets.split(",")]

    start = time.perf_counter()
    print(f"RT, scored on the {args.split} split; {args.seeds} seeds; accuracy in points: "
          "mean, sd, worst seed, worst seed's drop below the mean")
    for encoder in args.encoders.split(","):
        pool, X_pool, y_eval, X_eval, u = data(args.split, encoder)
        cells = Parallel(n_jobs=args.jobs)(
            delayed(cell)(b, s, pool, X_pool, y_eval, X_eval, u, heads) for b in budgets for s in range(args.seeds))
        by_budget = {b: cells[i * args.seeds:(i + 1) * args.seeds] for i, b in enumerate(budgets)}
        for name in heads:
            print(f"\n{encoder} + {name} (training pool {len(pool):,} texts, evaluated on {len(y_eval):,})")
            print(f"{'labels':>6}  {'before: mean   sd worst drop':28s}  {'after, no prompts':27s}  "
                  f"{'after: mean   sd worst drop':27s}  {'after-before':12s}  {'after-LR C=1':12s}  "
                  f"{'after-no prompts':16s}  {'no prompts-before':17s}  {'no prompts-LR C=1':17s}  "
                  f"{'LR C=1: mean   sd worst drop':28s}  {'oracle C: mean drop':19s}  after/before fit time")
            for b, rows in by_budget.items():
                old, new, prompted, ratio = (np.array([r[name][i] for r in rows]) for i in range(4))
                base, oracle = (np.array([r[k] for r in rows]) for k in ("baseline", "oracle"))
                print(f"{b:>6}  {summary(old):28s}  {summary(new):27s}  {summary(prompted):27s}  "
                      f"{paired(prompted - old):12s}  {paired(prompted - base):12s}  {paired(prompted - new):16s}  "
                      f"{paired(new - old):17s}  {paired(new - base):17s}  {summary(base):28s}  "
                      f"{oracle.mean():14.1f} {oracle.mean() - oracle.min():4.1f}  {np.median(ratio):.1f}x")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nwall time {time.perf_counter() - start:.0f} s with --jobs {args.jobs}; uptime: {load}")


if __name__ == "__main__":
    main()
