"""Domain-shift check: how far target texts lie from a model's training texts, on their vectors.

A classifier two-sample test (Lopez-Paz & Oquab, 2017, "Revisiting classifier two-sample tests"):
a linear classifier learns to tell a sample of training vectors from as many target vectors, and
its cross-validated ROC-AUC measures the gap: 0.5 when the target looks like the training data, 1.0
when every target text is told apart. A bundle keeps a seeded sample of its training vectors (no
texts; :func:`keep_sample`) so `predict` and `evaluate` can run the test on new texts without the
training data; `compare` runs it on the training sample of each cell.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.predict.metrics import roc_auc

SAMPLE = 1000  # training vectors a bundle keeps; also the most vectors per side the test uses
# Fewer texts than this on either side: no check. At 30 vs 30 the AUC of two samples of one distribution
# has a standard deviation of about 0.075, so THRESHOLD stays over 3 of them above 0.5.
MIN_TEXTS = 30
FOLDS = 5
# AUC above which a target is called shifted; docs/benchmarks/shift.md has the figures it rests on (RT's own
# test split vs its training sample, and the shifted targets).
THRESHOLD = 0.75
# AUC under which the texts overlap the training sample: held-out folds then hold the other fold's copies, and
# the classifier is worse than chance at telling them apart (0.39 and 0.07 for a bundle scored on its own site)
OVERLAP = 0.4
# Ridge: closed form, about 5x faster than logistic regression at the same AUC (within 0.01 on RT's test
# split, its 20%-positive resample and four shifted targets, MiniLM vectors).
ALPHA = 100.0


def keep_sample(X: np.ndarray, seed: int = 0, size: int = SAMPLE) -> np.ndarray:
    """A seeded sample of at most ``size`` rows of ``X``, as float16 (what a bundle stores)."""
    idx = np.sort(np.random.default_rng(seed).permutation(len(X))[:size])
    return np.asarray(X[idx], dtype=np.float16)


@dataclass(frozen=True)
class ShiftCheck:
    """The two-sample AUC of training vs target vectors, the sample sizes, and the threshold used."""

    auc: float
    n_train: int
    n_target: int
    seconds: float
    threshold: float = THRESHOLD

    @property
    def warning(self) -> bool:
        return self.auc > self.threshold

    def line(self) -> str:
        """One line for people: the figure, and above the threshold what it means and what helps."""
        head = (f"domain shift: a classifier tells these texts from the training texts with AUC {self.auc:.2f} "
                f"({self.n_target} vs {self.n_train} vectors; 0.5 = alike)")
        if self.auc < OVERLAP:
            return head[:-1] + "; well under it: many of these texts are the training texts themselves)"
        if not self.warning:
            return head
        return (f"WARNING {head}, above {self.threshold:.2f}: these texts are unlike the training texts. On such "
                "sets (docs/benchmarks/shift.md) accuracy moved up to 15 points from the training site's test split "
                "and prior adaptation cost up to 21, so scores measured there do not carry over. Label 16-64 of these "
                "texts drawn at random (`review-transfer label FILE --strategy random`) and `review-transfer "
                "retarget` the bundle to them.")

    def to_dict(self) -> dict[str, Any]:
        """The figures without the timing, so identical runs give identical records."""
        return {"auc": round(self.auc, 4), "warning": self.warning, "threshold": self.threshold,
                "n_train": self.n_train, "n_target": self.n_target}


def no_check(reason: str) -> dict[str, Any]:
    """The ``domain_shift`` entry when the check could not run: nulls and why."""
    return {"auc": None, "warning": None, "reason": reason}


def two_sample_auc(X_train: np.ndarray, X_target: np.ndarray, *, seed: int = 0) -> ShiftCheck | None:
    """Cross-validated AUC of a ridge classifier telling ``X_train`` rows from ``X_target`` rows.

    Both sides are cut to the same seeded number of rows (at most :data:`SAMPLE`), rounded to float16
    like a bundle's stored sample (so storage leaves no trace to detect), and standardised inside
    each fold. ``None`` when either side has fewer than :data:`MIN_TEXTS` rows.
    """
    start = time.perf_counter()
    n = min(len(X_train), len(X_target), SAMPLE)
    if n < MIN_TEXTS:
        return None
    rng = np.random.default_rng(seed)
    a = np.asarray(X_train[rng.permutation(len(X_train))[:n]], dtype=np.float16)
    b = np.asarray(X_target[rng.permutation(len(X_target))[:n]], dtype=np.float16)
    X = np.vstack([a, b]).astype(np.float64)
    y = np.r_[np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)]
    return ShiftCheck(float(roc_auc(y, out_of_fold_ridge(X, y, folds(y, rng)))), n, n, time.perf_counter() - start)


def folds(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The fold (0 to :data:`FOLDS` - 1) of each row: each class shuffled and dealt out in turn (stratified)."""
    fold = np.empty(len(y), dtype=np.int64)
    for cls in (0, 1):
        rows = np.flatnonzero(y == cls)
        fold[rows[rng.permutation(len(rows))]] = np.arange(len(rows)) % FOLDS
    return fold


def out_of_fold_ridge(X: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Decision values of a ridge classifier (targets -1/+1, an intercept, :data:`ALPHA`) on features standardised
    on each training fold, for every row from the fit that held its ``fold`` out. numpy alone: scikit-learn's
    import was most of a cold ``evaluate``; and one BLAS thread, since 2,000 x 768 is too small to share and
    two threads on a busy machine ran 10x slower."""
    from threadpoolctl import threadpool_limits

    target = 2.0 * y - 1
    scores = np.empty(len(y))
    with threadpool_limits(limits=1, user_api="blas"):
        for k in np.unique(fold):
            train, held = fold != k, fold == k
            mean, sd = X[train].mean(axis=0), X[train].std(axis=0)
            sd[sd == 0] = 1.0
            Z = (X[train] - mean) / sd  # centred, so the intercept is the targets' mean
            bias = target[train].mean()
            w = np.linalg.solve(Z.T @ Z + ALPHA * np.eye(X.shape[1]), Z.T @ (target[train] - bias))
            scores[held] = (X[held] - mean) / sd @ w + bias
    return scores
