"""Platt scaling: probabilities for margin classifiers (linear SVM, ridge, RBF SVM, k-NN) from a sigmoid.

:func:`fit_sigmoid` fits ``P(positive | s) = sigmoid(a * s + b)`` to scores ``s`` with Platt's
smoothed targets (Platt, 1999), which keep ``a`` finite when the scores separate the classes.
:class:`PlattCalibrated` wraps a classifier with ``decision_function`` (or, like k-NN, only
``predict_proba``: its margin is then P(positive) - 0.5, see :func:`margins`); its sigmoid is fitted on
out-of-fold decision values (passed in by the grid search that already computed them, or computed
by its own cross-validation), so it is not fooled by the classifier's fit to its own training data.
``intercept_weight`` pulls the sigmoid's intercept toward 0 (the classifier's own threshold, margin 0):
the linear heads use :data:`INTERCEPT_WEIGHT`, since on a few dozen labels their out-of-fold margins
place the threshold by noise (moving it cost their accuracy 0.2 points at 32 labels on RT's validation
split); an RBF SVM's own intercept is the noisier one on few labels, so it keeps Platt's.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils.validation import check_is_fitted

CV_FOLDS = 3
MIN_PER_CLASS_PER_FOLD = 8  # below this a validation fold is too small to rank or calibrate on
# The linear heads' Gaussian penalty INTERCEPT_WEIGHT * b**2 / 2 on the sigmoid's intercept: near p = 0.5 a row
# adds about 1/4 to the curvature in b, so this weighs as much as ~40 rows. Chosen on RT's validation split
# (1, 3, 10, 30 tried; 10 and 30 closed the 32-label loss, 30 lost 0.05 at 256 labels).
INTERCEPT_WEIGHT = 10.0


def margins(estimator: BaseEstimator, X: np.ndarray) -> np.ndarray:
    """Positive where a fitted binary ``estimator`` predicts its second class: its decision values, or
    P(second class) - 0.5 for one without them (k-NN)."""
    if hasattr(estimator, "decision_function"):
        return estimator.decision_function(X)
    return estimator.predict_proba(X)[:, 1] - 0.5


def within_rows(estimator: BaseEstimator, n_rows: int) -> BaseEstimator:
    """``estimator`` with any ``n_neighbors`` (its own or a step's) capped at ``n_rows``, for a refit on
    fewer rows (a k-NN over every training row asks for more neighbours than a fold holds)."""
    capped = {k: n_rows for k, v in estimator.get_params().items()
              if k.split("__")[-1] == "n_neighbors" and isinstance(v, int) and v > n_rows}
    return estimator.set_params(**capped)


def fit_sigmoid(scores: np.ndarray, y: np.ndarray, intercept_weight: float = 0.0) -> tuple[float, float]:
    """``(a, b)`` of Platt's sigmoid ``sigmoid(a * scores + b)`` for 0/1 labels ``y``, with ``a >= 0``.

    ``a`` is bounded below by 0, so a higher score never means a lower probability: when the scores
    carry no signal the fit says so (``a = 0``, a constant probability) instead of inverting them.
    ``intercept_weight`` adds the penalty ``intercept_weight * b**2 / 2``, pulling ``b`` toward 0 (a
    sigmoid centred on score 0) the more, the fewer the scores.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(y).ravel()
    n_pos = int((y == 1).sum())
    n_neg = len(y) - n_pos
    t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))  # Platt's targets
    scale = float(np.std(s)) or 1.0  # optimise on unit-scale scores, so tolerances mean the same for any head
    u = s / scale

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * u + ab[1]
        value = -(t * log_expit(z) + (1 - t) * log_expit(-z)).sum() + intercept_weight * ab[1] ** 2 / 2
        residual = expit(z) - t
        return float(value), np.array([residual @ u, residual.sum() + intercept_weight * ab[1]])

    prior = np.log((n_pos + 1.0) / (n_neg + 1.0))
    result = minimize(loss, np.array([1.0, prior]), jac=True, method="L-BFGS-B", bounds=[(0.0, None), (None, None)])
    return float(result.x[0] / scale), float(result.x[1])


class PlattCalibrated(ClassifierMixin, BaseEstimator):
    """``estimator`` fitted on all the data, with probabilities from a sigmoid of its decision values.

    ``fit(X, y, oof_decision=s)`` fits the sigmoid to out-of-fold decision values ``s`` (one per row
    of ``X``). Without them it computes them by stratified cross-validation (up to ``cv`` folds with at
    least 8 examples of each class in every validation fold); on samples too small for two such folds
    it uses the fitted estimator's own training decisions, which Platt's targets keep from overconfidence.
    ``intercept_weight`` (see :func:`fit_sigmoid`) pulls the sigmoid's intercept toward 0, so on few
    labels the predictions keep the classifier's own threshold unless the margins clearly say otherwise.
    """

    def __init__(self, estimator: BaseEstimator, cv: int = CV_FOLDS, intercept_weight: float = 0.0):
        self.estimator = estimator
        self.cv = cv
        self.intercept_weight = intercept_weight

    def __setstate__(self, state: dict) -> None:
        """Restore a saved head; those saved before ``intercept_weight`` existed were fitted without it."""
        super().__setstate__({"intercept_weight": 0.0, **state})

    def fit(self, X: np.ndarray, y: np.ndarray, oof_decision: np.ndarray | None = None) -> PlattCalibrated:
        """Fit the estimator on ``X, y`` and the sigmoid on out-of-fold decision values."""
        y = np.asarray(y)
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.estimator_.classes_
        if oof_decision is None:
            folds = min(self.cv, int(np.bincount(y, minlength=2).min()) // MIN_PER_CLASS_PER_FOLD)
            if folds >= 2:
                cv = StratifiedKFold(folds)
                model = within_rows(clone(self.estimator), min(len(train) for train, _ in cv.split(X, y)))
                method = "decision_function" if hasattr(model, "decision_function") else "predict_proba"
                oof = cross_val_predict(model, X, y, cv=cv, method=method)
                oof_decision = oof if oof.ndim == 1 else oof[:, 1] - 0.5  # as margins() turns probabilities
            else:
                oof_decision = margins(self.estimator_, X)
        if len(oof_decision) != len(y):
            raise ValueError(f"oof_decision has {len(oof_decision)} values for {len(y)} rows of X.")
        scored = np.isfinite(oof_decision)  # a head validated on a sample of each fold leaves the rest NaN
        self.a_, self.b_ = fit_sigmoid(np.asarray(oof_decision)[scored], (y == self.classes_[1])[scored],
                                       self.intercept_weight)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The wrapped estimator's decision values (P(positive) - 0.5 for a k-NN)."""
        check_is_fitted(self)
        return margins(self.estimator_, X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, 2)`` calibrated probabilities of ``classes_``."""
        p = expit(self.a_ * self.decision_function(X) + self.b_)
        return np.column_stack([1 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The second class where its calibrated probability is at least 0.5 (as :mod:`pipeline.predict.metrics` scores)."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
