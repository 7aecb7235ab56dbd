"""Benchmark ``retarget``'s held-out check on rows it did not see.

``retarget --labels N`` scores the new and the source bundle on the rows of TARGET it held back and warns
when the new one is worse beyond chance (:func:`pipeline.fit.retarget_bundle.compare_held_out`). Those rows
are the ones it is judged on, so here, with the targets, halves and label draws of ``bench_retarget.py``,
each scored half is cut in two at random: the warning is decided on one part and both bundles are scored on
the other. Prints per target and ``N`` how often it fires and, where it fires, whether keeping the source
wins on the unseen part; then the totals over the targets.

    PYTHONPATH=.:benchmarks python benchmarks/bench_retarget_warning.py [--labels 16,32,64] [--seeds 10] [--half val]
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np
from bench_retarget import ENCODER, ENGLISH, LONG, LOW_RATE, target

from pipeline.data.dataset import Dataset
from pipeline.fit.retarget import RetargetSettings, SourceHead, draw_labels, fit_retargeted
from pipeline.fit.retarget_bundle import compare_held_out
from pipeline.fit.train import fit
from pipeline.store.cache import EmbeddingCache, default_cache_dir
from pipeline.unlabelled.self_train import SelfTrainSettings


def seed_run(source: SourceHead, ds: Dataset, X: np.ndarray, n: int, seed: int) -> tuple[bool, float, float]:
    """(fired on part A, retarget's accuracy on part B, the source's on part B) for one seed's label draw of
    ``n`` texts of target ``ds`` (vectors ``X``)."""
    y = ds.labels
    perm = np.random.default_rng(1000 + seed).permutation(len(y))  # bench_retarget's halves
    own, scored = np.sort(perm[: len(y) // 2]), np.sort(perm[len(y) // 2:])
    lab = own[draw_labels(ds.subset(own), n, seed)]
    settings = RetargetSettings(seed=seed, self_train=SelfTrainSettings())
    p_new = fit_retargeted(source, X[lab], y[lab], X[np.setdiff1d(own, lab)], settings).proba(X[scored])
    p_source = 1 / (1 + np.exp(-source.score(source.rows(X[scored]))))
    cut = np.random.default_rng(7 + seed).permutation(len(scored))
    a, b = cut[: len(cut) // 2], cut[len(cut) // 2:]
    fired = compare_held_out(y[scored][a], p_new[a], p_source[a])["worse"]
    return fired, *(100 * float(((p[b] >= 0.5) == y[scored][b]).mean()) for p in (p_new, p_source))


def summary(rows: np.ndarray) -> str:
    """Fired count, and where fired: source − retarget on part B, how often ahead/behind; follow vs always."""
    fired = rows[:, 0] == 1
    d = rows[fired, 2] - rows[fired, 1]
    follow = np.where(fired, rows[:, 2], rows[:, 1]).mean()
    where = f"{d.mean():+.1f} (ahead {int((d > 0).sum())}, behind {int((d < 0).sum())})" if fired.any() else "-"
    return (f"fired {int(fired.sum())}/{len(rows)}; where fired, source - retarget on the unseen part {where}; "
            f"keep the source where it fires {follow:.2f} against always retarget {rows[:, 1].mean():.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default="16,32,64")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--half", choices=("val", "test"), default="val")
    args = parser.parse_args()
    start, cache_dir = time.perf_counter(), default_cache_dir()
    bundle = fit("rt", encoder=ENCODER, budget=1000, seed=0, cache_dir=cache_dir)
    source, enc, cache = SourceHead.of(bundle.head, "logreg"), bundle.get_encoder(), EmbeddingCache(cache_dir)
    totals: dict[int, list] = {}
    for name in [*ENGLISH, *LOW_RATE, LONG]:
        ds = target(name, 1000, args.half)
        X = cache.vectors(enc, ds.texts)
        for n in (int(x) for x in args.labels.split(",")):
            rows = [seed_run(source, ds, X, n, seed) for seed in range(args.seeds)]
            totals.setdefault(n, []).extend(rows)
            print(f"{name:>16} {n:>3}: {summary(np.array(rows, dtype=float))}", flush=True)
    for n, rows in totals.items():
        print(f"all, {n} labels: {summary(np.array(rows, dtype=float))}")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"wall time {time.perf_counter() - start:.0f} s; uptime: {load}")


if __name__ == "__main__":
    main()
