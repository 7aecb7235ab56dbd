"""Benchmark ``retarget`` with no labels on a routed bundle: the site's positive rate read from both heads' scores
together (the default) against its English head alone (``--one-view``), under label shift on top of covariate shift.

The source is the default bundle itself (``fit rt --budget 1000 --seed 0`` with the routed default encoder): its
English head reads mpnet's vectors, its other-language head e5's, both fitted on RT. On English texts read by both
encoders (:func:`pipeline.fit.retarget_side.widened`) the two heads are two views of each text. The sets are those of
``bench_retarget_zero.py`` (the nine development targets cut to one hash half, and the halves of the six packaged
English sets and of ``vader-amazon-mild`` resampled to each rate of ``--rates``), their English texts only; per seed
the first half is the site's unlabelled texts and the second is scored. Rules, each a threshold:

- ``as is``: the English head as the bundle holds it; ``sum as is``: the two heads' sum at 0;
- ``one view``: :func:`pipeline.fit.retarget.fit_recentred` on the English head (``retarget --one-view``: the median
  of its ranking's, EM's and BBSE's rates, kept within ``AGREEMENT`` of its share unless skewed);
- ``two views``: the same on the heads' sum, the rate read from both heads' scores together
  (:func:`pipeline.fit.retarget_rate.views_rate`; what ``retarget`` with no labels does by default);
- ``unguarded``: ``two views`` without its guard, so the threshold also moves where the joint rate lies nearer to
  one half than the sum's share (how this change first shipped);
- ``true q`` / ``true q sum``: the quantile at the first half's true rate on the English head / on the sum.

Prints per set the majority rate, the first half's true rate, the rates read (EM, BBSE, their median with the English
head's mixture, and the two heads' joint mixture with its separation), the accuracy of each rule on the scored half
(means over the seeds); then the means over the nine targets and over every set, and per rule the sets under their
majority rate and those more than a point under the bundle as it is.

    PYTHONPATH=.:benchmarks python benchmarks/bench_retarget_zero_views.py [--half val] [--rates 0.15,0.3,0.5,0.72,0.85]
        [--seeds 5]
"""

from __future__ import annotations

import time
from copy import copy

import numpy as np
from bench_retarget import ENGLISH, LONG, LOW_RATE
from bench_retarget_zero import arguments, sets, tally

from pipeline.encoders.spec import DEFAULT_ENCODER
from pipeline.fit.retarget import RetargetSettings, SourceHead, fit_recentred
import pipeline.fit.retarget_rate as rr
from pipeline.fit.retarget_rate import calibrated_rates, no_label_rate
from pipeline.fit.retarget_side import Side, widened
from pipeline.fit.train import fit
from pipeline.predict.prior import PriorModel
from pipeline.store.cache import default_cache_dir

RULES = ("as is", "sum as is", "one view", "unguarded", "two views", "true q", "true q sum")
READERS = ("true", "EM", "BBSE", "median", "views", "sep")


def unguarded(record: dict, s: np.ndarray) -> float:
    """The threshold on the sum's scores ``s`` of the site's own texts that ``two views`` would set without its guard."""
    rate, share = record["prior"]["value"], record["source_share"]
    if record["prior"]["from"] != "views" or (record["threshold_kept"] and rr.keeps(rate, share)):
        return -record["threshold_shift"]
    return float(np.quantile(s, 1 - rate))


def one_seed(first: SourceHead, joined: SourceHead, S: np.ndarray, y: np.ndarray, seed: int,
             model: PriorModel) -> list[float]:
    """The readers (:data:`READERS`) and accuracies (:data:`RULES`) of one seeded split of a set's English rows ``S``
    (the English head's columns, then the other head's)."""
    perm = np.random.default_rng(1000 + seed).permutation(len(y))
    own, scored = np.sort(perm[: len(y) // 2]), np.sort(perm[len(y) // 2:])
    d = len(first.coef)
    s1, s = first.score(first.rows(S[:, :d])), joined.score(joined.rows(S))
    one = fit_recentred(first, S[own, :d], RetargetSettings(), model)
    two = fit_recentred(joined, S[own], RetargetSettings(), model, first)
    em, bbse = calibrated_rates(s1[own], model)
    median = no_label_rate(s1[own], (em, bbse)).rate
    truth = float(y[own].mean())
    views = two.record["prior"]["ranking"] if two.record["prior"]["from"] == "views" else {"rate": np.nan, "separation": np.nan}
    acc = lambda z, t: 100 * float(np.mean((z[scored] > t) == y[scored]))  # noqa: E731
    quantile = lambda z: float(np.quantile(z[own], 1 - np.clip(truth, 0.02, 0.98)))  # noqa: E731
    return [truth, em, bbse, np.nan if median is None else median, views["rate"], views["separation"],
            acc(s1, 0.0), acc(s, 0.0), acc(s1, first.intercept - one.intercept), acc(s, unguarded(two.record, s[own])),
            acc(s, joined.intercept - two.intercept),
            acc(s1, quantile(s1)), acc(s, quantile(s))]


def main() -> None:
    args, start = arguments(__doc__, "0.15,0.3,0.5,0.72,0.85"), time.perf_counter()
    cache_dir = default_cache_dir()
    bundle = fit("rt", encoder=DEFAULT_ENCODER, budget=1000, seed=0, cache_dir=cache_dir)
    model, view = PriorModel.from_manifest(bundle.manifest), copy(bundle)
    view.encoder = widened(bundle.get_encoder())  # English texts read both encoders (E+O|O), as retarget reads them
    names = [*ENGLISH, *LOW_RATE, LONG]
    table: dict[str, dict[str, float]] = {}
    for name, X, y in sets(names, [float(r) for r in args.rates.split(",")], args.half,
                           view.embed):
        side = Side.of(bundle, X)
        first = SourceHead.of(side.head, "logreg")
        both, joined = side.second_view(first, "logreg", X)
        english = side.rows(X)
        runs = np.nanmean([one_seed(first, joined, both.take(X), y[english], seed, model) for seed in range(args.seeds)],
                          axis=0)
        rate = y[english].mean()
        table[name] = dict(zip((*READERS, *RULES), runs)) | {"majority": 100 * max(rate, 1 - rate)}
    print(f"source: fit rt --budget 1000 --seed 0 ({bundle.manifest['encoder']['spec']}; RT test accuracy "
          f"{100 * bundle.manifest['metrics']['test']['accuracy']:.1f}); {args.seeds} seeds; {args.half} halves")
    print(f"{'set':24s}{'majority':>9s}" + "".join(f"{c:>8s}" for c in READERS) + "".join(f"{c:>11s}" for c in RULES))
    for name, r in table.items():
        print(f"{name:24s}{r['majority']:9.1f}" + "".join(f"{r[c]:8.2f}" if c == "sep" else f"{100 * r[c]:8.1f}"
                                                         for c in READERS) + "".join(f"{r[c]:11.1f}" for c in RULES))
    for label, keys in (("mean, the nine", names), ("mean, every set", list(table))):
        print(f"{label:24s}{np.mean([table[k]['majority'] for k in keys]):9.2f}" + " " * 8 * len(READERS)
              + "".join(f"{np.mean([table[k][c] for k in keys]):11.2f}" for c in RULES))
    tally(table, list(RULES), args, start)


if __name__ == "__main__":
    main()
