"""Why ``retarget`` with no labels misses on mildly skewed sites: its rate readers against the truth, and what a
threshold could score with the true rate.

The source bundle and the sets are those of ``bench_retarget_zero.py`` (the nine development targets cut to one hash
half, and the halves of the six packaged English sets and of ``vader-amazon-mild`` resampled to each rate of
``--rates``; by default 15-35% and 65-85% positive, the mild skews, and 50%). Per seed a set is split in two
seeded halves: the first half is the site's unlabelled texts, the second is scored. For each set, means over the
seeds of:

- the first half's true positive rate, and the rates read from the source's scores of it: ``share`` (the share the
  bundle calls positive), ``mixture`` (the ranking's two bell curves, :func:`pipeline.fit.retarget_rate.unlabelled_rate`,
  with ``sep``, the ROC-AUC they imply), ``EM`` and ``BBSE`` (the bundle's own readers,
  :func:`~pipeline.fit.retarget_rate.calibrated_rates`) and ``rate`` (what ``retarget`` reads: their median);
- accuracy on the scored half of: the bundle ``as is``; ``retarget`` (:func:`pipeline.fit.retarget.fit_recentred`);
  the threshold at the quantile of the true rate (``true q``: the rate known, the ranking as it is); and the
  threshold that is best on the first half's own labels (``best``: the ranking's ceiling).

Then, per group of sets (positive rate 65-85%, 15-35%, 40-60%; and those whose mixture separates under 0.9, where
``retarget`` warns), the readers' mean signed error (reading minus truth) and mean accuracies.

    PYTHONPATH=.:benchmarks python benchmarks/bench_retarget_rates.py [--half val] [--rates 0.15,...,0.85] [--seeds 5]
"""

from __future__ import annotations

import subprocess
import time

import numpy as np
from bench_retarget import ENGLISH, LONG, LOW_RATE
from bench_retarget_zero import arguments, sets, source_bundle

from pipeline.fit.retarget import RetargetError, RetargetSettings, SourceHead, fit_recentred
from pipeline.fit.retarget_rate import MIN_SEPARATION, calibrated_rates, unlabelled_rate
from pipeline.predict.metrics import roc_auc
from pipeline.predict.prior import PriorModel

READERS = ("true", "share", "mixture", "sep", "EM", "BBSE", "rate")
ACCURACIES = ("as is", "retarget", "true q", "best")


def best_threshold(s: np.ndarray, y: np.ndarray) -> float:
    """The threshold on scores ``s`` that classifies 0/1 labels ``y`` best."""
    cands = np.r_[s.min() - 1, np.sort(s), s.max() + 1]
    return float(cands[int(np.argmax([np.mean((s > c) == y) for c in cands]))])


def one_seed(s_all: np.ndarray, X: np.ndarray, y: np.ndarray, seed: int, source: SourceHead,
             model: PriorModel) -> list[float]:
    """The readers (:data:`READERS`) and accuracies (:data:`ACCURACIES`) of one seeded split of a set."""
    perm = np.random.default_rng(1000 + seed).permutation(len(y))
    own, scored = np.sort(perm[: len(y) // 2]), np.sort(perm[len(y) // 2:])
    s, truth = s_all[own], float(y[own].mean())
    mixture = unlabelled_rate(s)[1]
    em, bbse = calibrated_rates(s, model) or (np.nan, np.nan)
    try:
        found = fit_recentred(source, X[own], RetargetSettings(), model)
        threshold, rate = source.intercept - found.intercept, found.record["prior"]["value"]
    except RetargetError:  # no rate to read: the bundle as it is
        threshold, rate = 0.0, np.nan
    acc = lambda t: 100 * float(np.mean((s_all[scored] > t) == y[scored]))  # noqa: E731
    return [truth, float(np.mean(s > 0)), mixture.rate, mixture.separation, em, bbse, rate,
            acc(0.0), acc(threshold), acc(float(np.quantile(s, 1 - np.clip(truth, 0.02, 0.98)))),
            acc(best_threshold(s, y[own]))]


def groups(table: dict[str, dict]) -> dict[str, list[str]]:
    """Sets by positive rate (mildly positive, mildly negative, balanced), and those the bundle ranks weakly."""
    by = lambda f: [k for k, r in table.items() if f(r)]  # noqa: E731
    return {"65-85% positive": by(lambda r: r["true"] >= 0.62), "15-35% positive": by(lambda r: r["true"] <= 0.38),
            "40-60% positive": by(lambda r: 0.38 < r["true"] < 0.62),
            f"separation < {MIN_SEPARATION}": by(lambda r: r["sep"] < MIN_SEPARATION)}


def main() -> None:
    args, start = arguments(__doc__, "0.15,0.2,0.25,0.3,0.35,0.5,0.65,0.7,0.75,0.8,0.85"), time.perf_counter()
    source, model, vectors = source_bundle(args.encoder)
    table: dict[str, dict] = {}
    for name, X, y in sets([*ENGLISH, *LOW_RATE, LONG], [float(r) for r in args.rates.split(",")], args.half, vectors):
        s_all = source.score(source.rows(X))
        runs = np.nanmean([one_seed(s_all, X, y, seed, source, model) for seed in range(args.seeds)], axis=0)
        table[name] = dict(zip((*READERS, *ACCURACIES), runs)) | {"majority": 100 * max(y.mean(), 1 - y.mean()),
                                                                  "auc": roc_auc(y, s_all)}
    print(f"{'set':24s}{'majority':>9s}{'AUC':>6s}" + "".join(f"{c:>8s}" for c in (*READERS, *ACCURACIES)))
    for name, r in table.items():
        print(f"{name:24s}{r['majority']:9.1f}{r['auc']:6.3f}"
              + "".join(f"{r[c]:8.2f}" if c == "sep" else f"{100 * r[c]:8.1f}" for c in READERS)
              + "".join(f"{r[c]:8.1f}" for c in ACCURACIES))
    print(f"\n{'group':24s}{'sets':>5s}" + "".join(f"{c + ' err':>11s}" for c in READERS[1:] if c != "sep")
          + "".join(f"{c:>9s}" for c in ("majority", *ACCURACIES)) + "  under majority: as is / retarget / true q")
    for label, keys in groups(table).items():
        if not keys:
            continue
        rows = [table[k] for k in keys]
        err = lambda c: 100 * np.nanmean([r[c] - r["true"] for r in rows])  # noqa: E731
        under = [sum(r[c] < r["majority"] - 0.05 for r in rows) for c in ("as is", "retarget", "true q")]
        print(f"{label:24s}{len(keys):5d}" + "".join(f"{err(c):+11.1f}" for c in READERS[1:] if c != "sep")
              + "".join(f"{np.mean([r[c] for r in rows]):9.1f}" for c in ("majority", *ACCURACIES))
              + "  " + " / ".join(map(str, under)))
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\n{len(table)} sets, {args.seeds} seeds, {args.half} halves, {args.encoder}; wall time "
          f"{time.perf_counter() - start:.0f} s; uptime: {load}")


if __name__ == "__main__":
    main()
