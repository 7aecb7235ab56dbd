"""Class-prior adaptation: correct posteriors for a positive rate that differs from training, but only
when the evidence says the rate, and nothing else, changed.

A head trained at positive rate ``train_prior`` outputs posteriors that assume that rate. For a
target set with another rate, Bayes' rule re-weights them exactly (:func:`adjust`). When the
target rate is unknown it is estimated from the unlabelled target texts two ways:

- EM (Saerens, Latinne & Decaestecker, 2002) on posteriors recalibrated by Platt scaling with a bias
  term on out-of-fold training probabilities (:class:`Calibration`, fitted by :meth:`PriorModel.fit`; the binary case of the
  bias-corrected calibration of Alexandari, Kundaje & Shrikumar, 2020). :func:`estimate_prior` finds
  EM's fixed point, the maximum-likelihood prior, by bisection.
- BBSE (Lipton, Wang & Smola, 2018): the rate of positive predictions on the target, corrected by the
  true- and false-positive rates of out-of-fold training predictions (:class:`Confusion`).

Both hold only under label shift (P(text | class) unchanged). On another site they drift apart,
collapse to 0 or 1, or agree on a wrong rate, so :func:`decide` adapts only when the domain-shift check
(:mod:`pipeline.predict.shift`) finds the texts like the training texts and the two bootstrap intervals
agree and exclude the training prior; otherwise it keeps the plain posteriors and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline import OptionError

EPS = 1e-6
# Out-of-fold folds for recalibration: 10 keeps each fold's model close to the final one (on RT at
# 1,000 labels, EM's worst error fell from 0.047 to 0.033 vs 5 folds); above LARGE_N labels 5 suffice.
CALIBRATION_FOLDS, LARGE_N, LARGE_N_FOLDS = 10, 2000, 5
EDGE = 0.02  # an estimate within this of 0 or 1 has collapsed: never applied
BOOTSTRAP, LEVEL = 200, 0.95  # bootstrap resamples and the level of their percentile intervals
MIN_SEPARATION = 0.2  # BBSE needs true-positive rate - false-positive rate at least this
# What to do when the rate cannot be estimated (docs/benchmarks/retarget.md measures the second way)
FIX = ("pass their positive rate with --prior if you know it, or `review-transfer retarget` the bundle to them "
       "(with these texts as --unlabelled it reads their rate from its ranking where it can; else label 16-32)")


def check_prior(value: float, name: str = "--prior") -> float:
    """``value`` as a float strictly inside (0, 1), else a ``ValueError`` saying so."""
    value = float(value)
    if not 0.0 < value < 1.0:
        raise OptionError(f"{name} must be a positive rate strictly between 0 and 1 (e.g. 0.3), got {value}.")
    return value


def adjust(p_pos: np.ndarray, train_prior: float, target_prior: float) -> np.ndarray:
    """Posteriors of positive re-weighted from ``train_prior`` to ``target_prior`` (Bayes' rule)."""
    check_prior(train_prior, "train_prior")
    check_prior(target_prior, "target_prior")
    p = np.clip(np.asarray(p_pos, dtype=np.float64), EPS, 1 - EPS)
    pos = p * (target_prior / train_prior)
    neg = (1 - p) * ((1 - target_prior) / (1 - train_prior))
    return pos / (pos + neg)


def _mle_priors(p: np.ndarray, train_prior: float) -> np.ndarray:
    """Maximum-likelihood target prior of each row of posteriors ``p`` (shape ``(..., n)``): EM's fixed point.

    The log-likelihood ``sum log(q * p/train + (1 - q) * (1 - p)/(1 - train))`` is concave in ``q``, so
    bisection on its derivative finds the maximum in [0, 1] to machine precision in 50 steps.
    """
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    a, b = p / train_prior, (1 - p) / (1 - train_prior)
    lo, hi = np.zeros(p.shape[:-1]), np.ones(p.shape[:-1])
    for _ in range(50):
        mid = (lo + hi) / 2
        rising = ((a - b) / (mid[..., None] * a + (1 - mid[..., None]) * b)).sum(axis=-1) > 0
        lo, hi = np.where(rising, mid, lo), np.where(rising, hi, mid)
    return np.clip((lo + hi) / 2, EPS, 1 - EPS)


def estimate_prior(p_pos: np.ndarray, train_prior: float) -> float:
    """EM estimate of the positive rate of the set whose posteriors (at ``train_prior``) are ``p_pos``."""
    p = np.asarray(p_pos, dtype=np.float64)
    if p.size == 0:
        raise OptionError("cannot estimate a prior from zero texts.")
    return float(_mle_priors(p, check_prior(train_prior, "train_prior")))


# ---------------------------------------------------------------------------------------------- calibration
def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), with ``p`` clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibration:
    """Platt recalibration of a head's probability of positive: ``sigmoid(a * logit(p) + b)``.

    Fitted on out-of-fold training probabilities, so the recalibrated posteriors hold at the training
    prior; EM needs calibrated posteriors to find the target prior.
    """

    a: float = 1.0
    b: float = 0.0

    def apply(self, p_pos: np.ndarray) -> np.ndarray:
        """Recalibrated probabilities of positive."""
        return 1.0 / (1.0 + np.exp(-(self.a * logit(p_pos) + self.b)))

    def to_dict(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Calibration:
        """From :meth:`to_dict` output; ``None`` -> the identity."""
        return cls(float(d["a"]), float(d["b"])) if d else cls()


@dataclass(frozen=True)
class Confusion:
    """Out-of-fold true- and false-positive rates of a head's predictions (p >= 0.5), with the class
    counts they came from: what BBSE inverts."""

    tpr: float
    fpr: float
    n_pos: int
    n_neg: int

    @classmethod
    def of(cls, p_pos: np.ndarray, y: np.ndarray) -> Confusion:
        hit, y = np.asarray(p_pos) >= 0.5, np.asarray(y)
        return cls(float(hit[y == 1].mean()), float(hit[y == 0].mean()), int((y == 1).sum()), int((y == 0).sum()))

    def prior(self, predicted_positive: np.ndarray | float) -> np.ndarray | float:
        """BBSE: the positive rate that explains this rate of positive predictions (not clipped to [0, 1]; inf or
        nan, under numpy's error state, where TPR equals FPR)."""
        return (predicted_positive - self.fpr) / np.float64(self.tpr - self.fpr)

    def to_dict(self) -> dict[str, float | int]:
        return {"tpr": round(self.tpr, 6), "fpr": round(self.fpr, 6), "n_pos": self.n_pos, "n_neg": self.n_neg}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Confusion | None:
        return cls(float(d["tpr"]), float(d["fpr"]), int(d["n_pos"]), int(d["n_neg"])) if d else None


def out_of_fold(estimator: Any, X: np.ndarray, y: np.ndarray, *, groups: Sequence[Any] | None = None,
                folds: int | None = None, seed: int = 0) -> np.ndarray | None:
    """Out-of-fold probabilities of positive of ``estimator`` (an unfitted clone is refitted per fold).

    Folds are stratified, and group-aware when ``groups`` has enough distinct values, so no fold
    predicts texts of a movie it was trained on. ``None`` when a class has fewer than two examples.
    ``folds`` defaults to :data:`CALIBRATION_FOLDS` (:data:`LARGE_N_FOLDS` above :data:`LARGE_N` examples).
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    from pipeline.heads.calibration import within_rows

    y = np.asarray(y)
    if groups is not None and any(g is None for g in groups):
        groups = None
    if folds is None:
        folds = CALIBRATION_FOLDS if len(y) <= LARGE_N else LARGE_N_FOLDS
    k = min(folds, int(np.bincount(y, minlength=2).min()))
    if k < 2:
        return None
    if groups is not None and len(set(groups)) >= 2 * k:
        cv, split_groups = StratifiedGroupKFold(k, shuffle=True, random_state=seed), list(groups)
    else:
        cv, split_groups = StratifiedKFold(k, shuffle=True, random_state=seed), None
    model = within_rows(clone(estimator), min(len(train) for train, _ in cv.split(X, y, split_groups)))
    return cross_val_predict(model, X, y, groups=split_groups, cv=cv, method="predict_proba")[:, 1]


# ---------------------------------------------------------------------------------------------- estimates
@dataclass(frozen=True)
class Estimate:
    """A prior estimate with its bootstrap percentile interval."""

    method: str
    value: float
    low: float
    high: float

    def text(self) -> str:
        return f"{self.method} {self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "value": round(self.value, 4), "low": round(self.low, 4),
                "high": round(self.high, 4)}


def _interval(method: str, value: float, boots: np.ndarray) -> Estimate:
    tail = 100 * (1 - LEVEL) / 2
    boots = np.where(np.isfinite(boots), boots, np.nan)  # a resample with TPR = FPR has no BBSE estimate
    low, high = np.nanpercentile(boots, [tail, 100 - tail]) if np.isfinite(boots).any() else (np.nan, np.nan)
    return Estimate(method, float(value), float(low), float(high))


def estimates(p_raw: np.ndarray, model: PriorModel, *, seed: int = 0) -> list[Estimate]:
    """EM (on recalibrated ``p_raw``) and, when the model records a confusion, BBSE estimates of the positive
    rate of these texts and their difference EM - BBSE, each with a bootstrap interval (resampling the
    texts, and the out-of-fold true- and false-positive rates binomially; both estimates come from the
    same resamples, so the difference's interval is paired)."""
    p_raw = np.asarray(p_raw, dtype=np.float64)
    if p_raw.size == 0:
        raise OptionError("cannot estimate a prior from zero texts.")
    p_cal = model.calibration.apply(p_raw)
    rng = np.random.default_rng(seed)
    em_boots, bbse_boots = [], []
    for start in range(0, BOOTSTRAP, 20):  # 20 resamples at a time bound the memory on large sets
        idx = rng.integers(0, p_raw.size, size=(min(20, BOOTSTRAP - start), p_raw.size))
        em_boots.append(_mle_priors(p_cal[idx], model.train))
        if model.confusion is not None:
            c = model.confusion
            tpr = rng.binomial(c.n_pos, c.tpr, len(idx)) / c.n_pos
            fpr = rng.binomial(c.n_neg, c.fpr, len(idx)) / c.n_neg
            with np.errstate(divide="ignore", invalid="ignore"):
                bbse_boots.append(((p_raw[idx] >= 0.5).mean(axis=1) - fpr) / (tpr - fpr))
    found = [_interval("EM", float(_mle_priors(p_cal, model.train)), np.concatenate(em_boots))]
    if model.confusion is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            value = model.confusion.prior(float((p_raw >= 0.5).mean()))
        em, bbse = np.concatenate(em_boots), np.concatenate(bbse_boots)
        found += [_interval("BBSE", value, bbse), _interval("EM - BBSE", found[0].value - value, em - bbse)]
    return found


@dataclass(frozen=True)
class Decision:
    """Whether to re-weight to an estimated prior, and the one-line reason."""

    adapt: bool
    prior: float | None
    reason: str
    estimates: tuple[Estimate, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"adapted": self.adapt, "prior": None if self.prior is None else round(self.prior, 4),
                "reason": self.reason, "estimates": [e.to_dict() for e in self.estimates]}


def decide(found: Sequence[Estimate], model: PriorModel, shift: dict[str, Any] | None) -> Decision:
    """Adapt to EM's estimate only when the domain-shift check ran and did not warn (``shift``: the
    ``domain_shift`` entry of :mod:`pipeline.predict.shift`), both estimates are away from 0 and 1, they agree
    (the paired interval of EM - BBSE holds 0), and neither interval holds the training prior.

    The shift check comes first because both estimates assume that only the class balance changed: on
    other sites they can agree with each other and still be wrong (both lean on P(text | class) from RT).
    """
    em, priors = found[0], tuple(found[:2])
    shown = ", ".join(e.text() for e in priors)
    found = tuple(found)
    if not shift or shift.get("auc") is None:
        why = (shift or {}).get("reason", "no training sample")
        return Decision(False, None, f"{shown}; the domain-shift check did not run ({why}), so a change of the "
                                     "class balance alone cannot be confirmed; not adapting", found)
    if shift["warning"]:
        return Decision(False, None, f"{shown}; but these texts are unlike the training texts (shift AUC "
                                     f"{shift['auc']:.2f}), and the estimates hold only when the class balance alone "
                                     f"changed; not adapting: {FIX}", found)
    if model.confusion is None:
        return Decision(False, None, f"{shown}: one estimate only (the bundle records no out-of-fold confusion "
                                     "matrix to cross-check EM with BBSE); not adapting. Refit, or pass --prior", found)
    if model.confusion.tpr - model.confusion.fpr < MIN_SEPARATION:
        return Decision(False, None, f"the model is too weak to estimate a prior (out-of-fold TPR "
                                     f"{model.confusion.tpr:.2f}, FPR {model.confusion.fpr:.2f}); not adapting", found)
    for e in priors:
        if not (np.isfinite(e.value) and EDGE < e.value < 1 - EDGE):
            edge = 0 if not np.isfinite(e.value) or e.value < 0.5 else 1
            return Decision(False, None, f"{e.method} estimate {e.value:.2f} collapses to {edge} ({shown}): the "
                                         f"probabilities do not fit these texts; not adapting: {FIX}", found)
    if not found[2].covers(0.0):
        return Decision(False, None, f"estimates disagree: {shown} ({found[2].text()}); "
                                     f"not adapting: {FIX}", found)
    if any(e.covers(model.train) for e in priors):
        return Decision(False, None, f"no clear prior shift: training {model.train:.2f} is inside {shown}; "
                                     "not adapting", found)
    return Decision(True, em.value, f"estimates agree and exclude training {model.train:.2f}: {shown}; "
                                    f"re-weighting to {em.value:.3f}", found)


# ---------------------------------------------------------------------------------------------- adaptation
@dataclass(frozen=True)
class Adapted:
    """The probabilities to use (re-weighted, or the plain ones when adaptation was declined), the prior
    they were re-weighted to (``None`` if declined), whether it was estimated, the training prior,
    and for an estimated prior the decision."""

    p_pos: np.ndarray
    prior: float | None
    estimated: bool
    train_prior: float
    decision: Decision | None = None

    def describe(self) -> str:
        """One line for people."""
        if self.decision is not None:
            return f"class prior: {self.decision.reason}"
        return (f"class prior: positive rate set to {self.prior:.3f} (training {self.train_prior:.3f}); "
                "probabilities re-weighted to it")


@dataclass(frozen=True)
class PriorModel:
    """What a bundle records for adaptation: training prior, recalibration and out-of-fold confusion."""

    train: float
    calibration: Calibration = Calibration()
    confusion: Confusion | None = None

    @classmethod
    def fit(cls, estimator: Any, X: np.ndarray, y: np.ndarray, *, groups: Sequence[Any] | None = None,
            seed: int = 0) -> PriorModel:
        """From out-of-fold probabilities of ``estimator`` on its training data (see :func:`out_of_fold`);
        a sample too small for folds gets the identity calibration and no confusion."""
        from pipeline.heads.calibration import fit_sigmoid

        y = np.asarray(y)
        oof = out_of_fold(estimator, X, y, groups=groups, seed=seed)
        if oof is None:
            return cls(float(np.mean(y)))
        return cls(float(np.mean(y)), Calibration(*fit_sigmoid(logit(oof), y)), Confusion.of(oof, y))

    def adapt(self, p_pos: np.ndarray, target_prior: float | None = None, *, shift: dict[str, Any] | None = None,
              seed: int = 0) -> Adapted:
        """Re-weight ``p_pos`` (recalibrated first) to ``target_prior``; when that is ``None``, estimate it
        and re-weight only if :func:`decide` says so (given the texts' domain-shift check ``shift``), else
        return ``p_pos`` unchanged with the reason."""
        p_pos = np.asarray(p_pos, dtype=np.float64)
        # a recalibration of slope 0 (out-of-fold scores of a few labels with no signal) maps every text to one
        # probability: re-weighting that would call every text one class, so the head's own ranking is kept
        p_cal = self.calibration.apply(p_pos) if self.calibration.a > 0 else p_pos
        if target_prior is not None:
            return Adapted(adjust(p_cal, self.train, check_prior(target_prior)), float(target_prior), False, self.train)
        decision = decide(estimates(p_pos, self, seed=seed), self, shift)
        if decision.adapt:
            return Adapted(adjust(p_cal, self.train, decision.prior), decision.prior, True, self.train, decision)
        return Adapted(p_pos, None, True, self.train, decision)

    def to_dict(self) -> dict[str, Any]:
        entry = {"train": round(self.train, 6), "calibration": self.calibration.to_dict()}
        if self.confusion is not None:
            entry["confusion"] = self.confusion.to_dict()
        return entry

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], where: str = "bundle") -> PriorModel:
        """The model recorded in a bundle manifest, or an OptionError saying how to get one."""
        entry = manifest.get("prior")
        if not entry:
            raise OptionError(
                f"{where}: records no training prior (made before class-prior support), so --prior/--adapt-prior "
                "cannot re-weight it exactly; refit it with `review-transfer fit` or `finetune`."
            )
        return cls(check_prior(entry["train"], "training prior"), Calibration.from_dict(entry.get("calibration")),
                   Confusion.from_dict(entry.get("confusion")))
