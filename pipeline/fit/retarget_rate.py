"""A target site's positive rate from the source head's ranking of its texts, a few labels and many unlabelled.

Under covariate shift the source head's probabilities are miscalibrated on the target, so EM and BBSE on
them drift (the prior guard refuses them). Its *ranking* survives much better: on a 14%-positive site the
RT bundle's ROC-AUC is about 0.96. :func:`mixture_rate` reads the rate from the shape of the ranking
alone. The source's log-odds of the target texts are modelled as two Gaussians with one spread, one per
class; the labelled texts' classes are fixed, the unlabelled texts' are latent, and EM fits means, spread
and weight. The positive component's weight is the rate: the unlabelled texts pin it far more tightly than
16-64 labels can. The mixture is trusted only where it is safe (:func:`refined_rate`): the scores must
rank the labelled texts well, its two components must separate, and its rate must lie within the labels'
own 95% interval, so it refines the labels' rate and never overrules it (docs/benchmarks/retarget.md
measures it). With no labels at all (:func:`unlabelled_rate`) the mixture is fitted on the unlabelled scores
alone and trusted where its components separate by :data:`MIN_SEPARATION_UNLABELLED` and its rate is not a
sliver in a tail (:data:`RATE_RANGE`). :func:`no_label_rate` decides what the threshold does with no labels:
where the bundle records its own two readers of a new site's rate (EM on its recalibrated probabilities, BBSE
with its out-of-fold confusion: :func:`calibrated_rates`), the rate is the median of theirs and the mixture's,
since each of the three goes wrong on some sites but seldom with the others (docs/benchmarks/retarget.md);
else the mixture's where it is trusted. Within :data:`AGREEMENT` of the share of the texts the source already
calls positive, a rate between :data:`SKEWED` and ``1 - SKEWED`` confirms the source's threshold rather than
moving it: there a move of a few points costs about as much as it gains. A skewed rate (a site of under 20% or
over 80% positive) always moves it, since there a threshold a few points off the rate is what drops accuracy
under the majority rate (docs/benchmarks/retarget.md). Where two heads score the same texts (a routed bundle's
English texts read by both its encoders), the rate is read first from their joint shape (:func:`views_rate`): on
sites each head ranks at ROC-AUC about 0.8 (a 72%-positive site that every one-head reader takes for balanced) the
two together separate the classes well enough to read it, and the threshold moves on the heads' sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import erf
from typing import Any

import numpy as np

from pipeline.intervals import wilson_interval

MIN_UNLABELLED = 50  # fewer unlabelled texts than this: the labels' own rate
MIN_SEPARATION = 0.9  # a mixture separating less (implied ROC-AUC): the labels' own rate
MIN_LABELS_AUC = 0.85  # the source scores' ROC-AUC on the labelled texts: under it, the labels' own rate
MIN_SEPARATION_UNLABELLED = 0.75  # with no labels: a mixture separating less, no rate (chosen on validation halves)
RATE_RANGE = (0.08, 0.92)  # with no labels: a rate outside this is a sliver in a tail, not a class
AGREEMENT = 0.10  # with no labels: a rate this close to the share the source calls positive keeps its threshold
SKEWED = 0.20  # ... unless the rate is under this or over 1 - this: a skewed rate always sets the threshold
COLLAPSED = 0.02  # with no labels: a median rate this close to 0 or 1 has collapsed onto one class (no rate)
ITERATIONS = 200
MIN_VARIANCE = 1e-2  # the spread's floor, in squared log-odds


@dataclass(frozen=True)
class RankingRate:
    """The mixture's positive weight, and how well its two components separate: the ROC-AUC they imply,
    ``Φ((m₁ - m₀) / sqrt(2 v))`` (0.5 or below: no split of the ranking the rate could be read from)."""

    rate: float
    separation: float
    labels_auc: float = float("nan")  # the scores' ROC-AUC on the labelled texts


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def mixture_rate(unlabelled: np.ndarray, labelled: np.ndarray, y: np.ndarray) -> RankingRate:
    """The positive weight of a two-Gaussian mixture (one shared variance) on source log-odds: ``unlabelled``
    scores with latent classes, ``labelled`` scores with 0/1 classes ``y`` fixed; EM started from the source
    threshold (0)."""
    labelled = np.asarray(labelled, dtype=np.float64)
    rate, separation = _mixture(np.asarray(unlabelled, dtype=np.float64)[:, None], labelled[:, None],
                                np.asarray(y, dtype=np.float64))
    return RankingRate(rate, separation, _auc(labelled, np.asarray(y, dtype=np.float64)))


def views_rate(scores: np.ndarray) -> RankingRate:
    """The positive weight of a two-Gaussian mixture with one shared covariance on several views' log-odds of the same
    unlabelled texts (``scores``: a row per text, a column per view; the two heads of a routed bundle on its English
    texts), EM started from the views' summed threshold (0). Two views that rank a site each at ROC-AUC about 0.8
    separate its classes further together than either alone, and the mixture reads the rate from that joint shape."""
    scores = np.asarray(scores, dtype=np.float64)
    rate, separation = _mixture(scores, np.zeros((0, scores.shape[1])), np.zeros(0))
    return RankingRate(rate, separation)


def _mixture(unlabelled: np.ndarray, labelled: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(positive weight, separation) of a two-Gaussian mixture with one shared covariance on rows of scores
    (``unlabelled`` latent, ``labelled`` of 0/1 classes ``y``), EM started from the rows' summed threshold (0).
    The separation is the ROC-AUC the components imply, ``Φ(Δ / √2)`` with ``Δ`` their Mahalanobis distance."""
    s_all = np.vstack([unlabelled, labelled])
    n, k = s_all.shape
    r = (unlabelled.sum(axis=1) > 0).astype(np.float64)
    rate, m1, m0, precision = 0.5, np.zeros(k), np.zeros(k), np.eye(k)
    for _ in range(ITERATIONS):
        resp = np.r_[r, y]
        w1, w0 = max(resp.sum(), 1e-3), max(n - resp.sum(), 1e-3)
        m1, m0 = resp @ s_all / w1, (1 - resp) @ s_all / w0
        d1, d0 = s_all - m1, s_all - m0
        cov = ((d1.T * resp) @ d1 + (d0.T * (1 - resp)) @ d0) / n
        cov += max(0.0, MIN_VARIANCE - float(np.linalg.eigvalsh(cov)[0])) * np.eye(k)
        precision = np.linalg.inv(cov)
        rate = float(np.clip(resp.mean(), 1e-3, 1 - 1e-3))
        u1, u0 = unlabelled - m1, unlabelled - m0
        gap = np.einsum("ij,jk,ik->i", u0, precision, u0) - np.einsum("ij,jk,ik->i", u1, precision, u1)
        r = _sigmoid(np.log(rate / (1 - rate)) + gap / 2)
    distance = float(np.sqrt(max((m1 - m0) @ precision @ (m1 - m0), 0.0)))
    return rate, 0.5 * (1 + erf(distance / 2)) if m1.sum() > m0.sum() else 0.5 * (1 - erf(distance / 2))


def _auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC-AUC of ``scores`` for 0/1 ``y`` (ties count a half); NaN without both classes."""
    pos, neg = scores[y == 1], scores[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def labels_interval(positive: int, n: int) -> tuple[float, float]:
    """The Wilson 95% interval of a positive rate of ``positive`` in ``n`` labels drawn at random."""
    return wilson_interval(positive, n)


def refined_rate(unlabelled: np.ndarray, labelled: np.ndarray,
                 y: np.ndarray) -> tuple[float | None, RankingRate | None]:
    """(rate, the mixture): the mixture's rate where it may be trusted (at least :data:`MIN_UNLABELLED`
    unlabelled scores; the scores rank the labelled texts at ROC-AUC :data:`MIN_LABELS_AUC` or more; the
    components separate by :data:`MIN_SEPARATION` or more; the rate inside :func:`labels_interval`), else
    ``None`` for the rate (with the mixture, when one was fitted, to say why)."""
    if len(unlabelled) < MIN_UNLABELLED:
        return None, None
    found = mixture_rate(unlabelled, labelled, y)
    low, high = labels_interval(int(np.sum(y)), len(y))
    trusted = (found.labels_auc >= MIN_LABELS_AUC and found.separation >= MIN_SEPARATION
               and low <= found.rate <= high)
    return (found.rate if trusted else None), found


def unlabelled_rate(scores: np.ndarray) -> tuple[float | None, RankingRate]:
    """(rate, the mixture) of source log-odds ``scores`` of unlabelled target texts alone: the mixture's rate
    where its components separate by :data:`MIN_SEPARATION_UNLABELLED` or more and the rate lies in
    :data:`RATE_RANGE`, else ``None`` for the rate."""
    found = mixture_rate(scores, np.zeros(0), np.zeros(0))
    trusted = found.separation >= MIN_SEPARATION_UNLABELLED and RATE_RANGE[0] <= found.rate <= RATE_RANGE[1]
    return (found.rate if trusted else None), found


@dataclass(frozen=True)
class NoLabelRate:
    """What the threshold does with no labels: the site's rate (``None``: none could be read), where it came
    from (``views``: the joint mixture of two heads' scores; ``readers``: the median of the mixture, EM and BBSE;
    ``ranking``: the mixture alone), the share of the
    texts the source calls positive, EM's and BBSE's rates (``None`` without a recorded confusion), and whether
    the threshold stays (the rate agrees with the share and is not skewed)."""

    rate: float | None
    source: str
    mixture: RankingRate
    share: float
    calibrated: tuple[float, float] | None
    kept: bool


def calibrated_rates(scores: np.ndarray, model: Any) -> tuple[float, float] | None:
    """(EM, BBSE) rates of source log-odds ``scores`` by the bundle's prior model (a
    :class:`~pipeline.predict.prior.PriorModel`: EM on its recalibrated probabilities, BBSE by its out-of-fold
    confusion), or ``None`` where it records no confusion that separates the classes."""
    from pipeline.predict.prior import MIN_SEPARATION as BBSE_SEPARATION
    from pipeline.predict.prior import estimate_prior

    if model is None or model.confusion is None or model.confusion.tpr - model.confusion.fpr < BBSE_SEPARATION:
        return None
    em = estimate_prior(model.calibration.apply(_sigmoid(np.asarray(scores, dtype=np.float64))), model.train)
    bbse = float(np.clip(model.confusion.prior(float(np.mean(np.asarray(scores) > 0))), 0.0, 1.0))
    return float(em), bbse


def no_label_rate(scores: np.ndarray, calibrated: tuple[float, float] | None = None,
                  views: np.ndarray | None = None) -> NoLabelRate:
    """The rate of unlabelled target texts with source log-odds ``scores`` and whether the threshold stays (see
    the module docstring); ``calibrated``: :func:`calibrated_rates` of the same scores. With ``views`` (a row per
    text, a column per head: ``scores`` first; the threshold then moves on their sum), the rate is the views'
    joint mixture's (:func:`views_rate`) where it separates and is not a sliver, and the share is the sum's; the
    threshold also stays where that rate lies nearer to one half than the share (a rate read without labels errs
    toward balance: on the validation halves moving there cost up to 6 points, docs/benchmarks/retarget.md)."""
    scores = np.asarray(scores, dtype=np.float64)
    if views is not None:
        joint, share = views_rate(views), float(np.mean(np.asarray(views).sum(axis=1) > 0))
        if joint.separation >= MIN_SEPARATION_UNLABELLED and RATE_RANGE[0] <= joint.rate <= RATE_RANGE[1]:
            toward_balance = abs(joint.rate - 0.5) < abs(share - 0.5)  # where a reading without labels errs
            kept = keeps(joint.rate, share) or toward_balance
            return NoLabelRate(joint.rate, "views", joint, share, calibrated, kept)
    rate, mixture = unlabelled_rate(scores)
    share, source = float(np.mean(scores > 0)), "ranking"
    if calibrated is not None:
        rate, source = float(np.median([mixture.rate, *calibrated])), "readers"
        if not COLLAPSED < rate < 1 - COLLAPSED:  # two readers see (almost) one class only: no rate
            rate = None
    return NoLabelRate(rate, source, mixture, share, calibrated, rate is not None and keeps(rate, share))


def keeps(rate: float, share: float) -> bool:
    """Whether a rate read with no labels keeps the threshold that calls ``share`` of the texts positive: it agrees
    with it (within :data:`AGREEMENT`) and is not skewed (between :data:`SKEWED` and ``1 - SKEWED``)."""
    return abs(rate - share) <= AGREEMENT and SKEWED <= rate <= 1 - SKEWED
