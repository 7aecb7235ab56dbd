"""Scores for a binary classifier from true 0/1 labels and the predicted probability of positive."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss, roc_auc_score

ECE_BINS = 10


def positive_proba(proba: np.ndarray) -> np.ndarray:
    """Probability of class 1 from a ``(n,)`` vector or a ``(n, 2)`` ``predict_proba`` matrix."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim == 2 and proba.shape[1] == 2:
        proba = proba[:, 1]
    if proba.ndim != 1:
        raise ValueError(f"proba has shape {proba.shape}; expected (n,) or (n, 2).")
    if not np.all((proba >= 0) & (proba <= 1)):
        raise ValueError("proba holds values outside [0, 1]; pass probabilities, not decision scores.")
    return proba


def expected_calibration_error(y_true: np.ndarray, p_pos: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE: |accuracy - confidence| of the predicted class, averaged over equal-width
    confidence bins weighted by their share of examples."""
    y_true = np.asarray(y_true)
    pred = (p_pos >= 0.5).astype(int)
    confidence = np.where(pred == 1, p_pos, 1 - p_pos)  # in [0.5, 1]
    correct = pred == y_true
    bins = np.minimum(((confidence - 0.5) * 2 * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def evaluate(y_true: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, ROC-AUC, log-loss, ECE and confusion matrix at threshold 0.5.

    ``proba`` is the probability of positive (``(n,)``) or a ``(n, 2)`` ``predict_proba`` matrix.
    ROC-AUC is ``None`` when ``y_true`` holds a single class. The confusion matrix is
    ``[[true neg, false pos], [false neg, true pos]]``.
    """
    y_true = np.asarray(y_true).astype(np.int64)
    p_pos = positive_proba(proba)
    if len(y_true) != len(p_pos) or len(y_true) == 0:
        raise ValueError(f"got {len(y_true)} labels and {len(p_pos)} probabilities; expected the same, non-zero count.")
    pred = (p_pos >= 0.5).astype(np.int64)
    both = len(np.unique(y_true)) == 2
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, average="macro", labels=[0, 1], zero_division=0)),
        "roc_auc": float(roc_auc_score(y_true, p_pos)) if both else None,
        "log_loss": float(log_loss(y_true, np.column_stack([1 - p_pos, p_pos]), labels=[0, 1])),
        "ece": expected_calibration_error(y_true, p_pos),
        "confusion_matrix": confusion_matrix(y_true, pred, labels=[0, 1]).tolist(),
    }
