"""Class-prior adaptation: correct posteriors for a positive rate that differs from training.

A head trained at positive rate ``train_prior`` outputs posteriors that assume that rate. For a
target set with another rate, Bayes' rule re-weights them exactly (:func:`adjust`). When the
target rate is unknown, :func:`estimate_prior` finds it from the unlabelled target posteriors by
EM (Saerens, Latinne & Decaestecker, 2002, "Adjusting the outputs of a classifier to new a priori
probabilities: a simple procedure"). EM needs calibrated posteriors: heads are overconfident on a
shifted domain, so :func:`fit_calibration` learns a Platt recalibration from out-of-fold training
probabilities, and :func:`adapt` applies it before estimating and re-weighting.
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
EDGE = 0.02  # an EM estimate within this of 0 or 1 is flagged as unreliable


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


def estimate_prior(p_pos: np.ndarray, train_prior: float, *, tol: float = 1e-6, max_iter: int = 1000) -> float:
    """EM estimate of the positive rate of the set whose posteriors (at ``train_prior``) are ``p_pos``."""
    p = np.asarray(p_pos, dtype=np.float64)
    if p.size == 0:
        raise OptionError("cannot estimate a prior from zero texts.")
    prior = float(train_prior)
    for _ in range(max_iter):
        new = float(np.clip(adjust(p, train_prior, prior).mean(), EPS, 1 - EPS))
        if abs(new - prior) < tol:
            return new
        prior = new
    return prior


# ---------------------------------------------------------------------------------------------- calibration
def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), with ``p`` clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibration:
    """Platt recalibration of a head's probability of positive: ``sigmoid(a * logit(p) + b)``.

    Fitted on out-of-fold training probabilities (:func:`fit_calibration`), so the recalibrated
    posteriors hold at the training prior; EM needs calibrated posteriors to find the target prior.
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


def fit_calibration(estimator: Any, X: np.ndarray, y: np.ndarray, *, groups: Sequence[Any] | None = None,
                    folds: int | None = None, seed: int = 0) -> Calibration:
    """Platt scaling of ``estimator`` (an unfitted clone is refitted per fold) from out-of-fold probabilities.

    Folds are stratified, and group-aware when ``groups`` has enough distinct values, so no fold
    predicts texts of a movie it was trained on. With fewer than two examples of a class per fold
    there is nothing to fit: the identity is returned. ``folds`` defaults to :data:`CALIBRATION_FOLDS`
    (:data:`LARGE_N_FOLDS` above :data:`LARGE_N` examples).
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    from pipeline.calibration import fit_sigmoid

    y = np.asarray(y)
    if groups is not None and any(g is None for g in groups):
        groups = None
    if folds is None:
        folds = CALIBRATION_FOLDS if len(y) <= LARGE_N else LARGE_N_FOLDS
    k = min(folds, int(np.bincount(y, minlength=2).min()))
    if k < 2:
        return Calibration()
    if groups is not None and len(set(groups)) >= 2 * k:
        cv, split_groups = StratifiedGroupKFold(k, shuffle=True, random_state=seed), list(groups)
    else:
        cv, split_groups = StratifiedKFold(k, shuffle=True, random_state=seed), None
    oof = cross_val_predict(clone(estimator), X, y, groups=split_groups, cv=cv, method="predict_proba")[:, 1]
    return Calibration(*fit_sigmoid(logit(oof), y))


# ---------------------------------------------------------------------------------------------- adaptation
@dataclass(frozen=True)
class Adapted:
    """Posteriors re-weighted to a target prior, the prior used, whether it was estimated, and the
    training prior they were re-weighted from."""

    p_pos: np.ndarray
    prior: float
    estimated: bool
    train_prior: float

    def describe(self) -> str:
        """One line for people."""
        how = "estimated by EM at" if self.estimated else "set to"
        line = (f"class prior: positive rate {how} {self.prior:.3f} (training {self.train_prior:.3f}); "
                "probabilities re-weighted to it")
        if self.estimated and not EDGE < self.prior < 1 - EDGE:
            line += ("; WARNING: an estimate this close to 0 or 1 usually means the model's probabilities are too "
                     "weak to estimate the rate (few labels, weak encoder): pass --prior if you know it")
        return line


def adapt(p_pos: np.ndarray, train_prior: float, *, target_prior: float | None = None,
          calibration: Calibration | None = None) -> Adapted:
    """Recalibrate ``p_pos`` (when ``calibration`` is given), then re-weight it from ``train_prior`` to
    ``target_prior``, or, when that is ``None``, to the prior EM estimates from these posteriors."""
    p = (calibration or Calibration()).apply(p_pos)
    if target_prior is None:
        prior = estimate_prior(p, train_prior)
        return Adapted(adjust(p, train_prior, prior), prior, True, train_prior)
    return Adapted(adjust(p, train_prior, check_prior(target_prior)), float(target_prior), False, train_prior)


# ---------------------------------------------------------------------------------------------- bundles
def manifest_entry(y_train: np.ndarray, calibration: Calibration) -> dict[str, Any]:
    """What a bundle manifest records for adaptation: the training prior and the recalibration."""
    return {"train": round(float(np.mean(y_train)), 6), "calibration": calibration.to_dict()}


def from_manifest(manifest: dict[str, Any], where: str = "bundle") -> tuple[float, Calibration]:
    """(training prior, calibration) recorded in a bundle manifest, or ValueError saying how to get them."""
    entry = manifest.get("prior")
    if not entry:
        raise OptionError(
            f"{where}: records no training prior (fitted before class-prior support, or fine-tuned), so "
            "--prior/--adapt-prior cannot re-weight it exactly; refit it with `review-transfer fit`."
        )
    return check_prior(entry["train"], "training prior"), Calibration.from_dict(entry.get("calibration"))
