"""Scores for a binary classifier from true 0/1 labels and the predicted probability of positive.

Written with numpy from their definitions (``compare`` scores hundreds of cells, scikit-learn's input
checks cost 10 ms a call, and importing scipy.stats for its ranks costs a cold ``evaluate`` about a second);
``tests/test_heads.py`` checks them against scikit-learn's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ECE_BINS = 10


def mcnemar_z(first_only: int, second_only: int) -> float:
    """McNemar's z for paired calls: the rows only the first gets right (or a first kind of error) against those
    only the second gets right; positive where the first has more; 0.0 where neither has any."""
    total = first_only + second_only
    return (first_only - second_only) / total ** 0.5 if total else 0.0


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


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC of ``scores`` for 0/1 labels ``y_true`` (Mann-Whitney U, ties counting one half); ``None`` when
    ``y_true`` holds a single class."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    n_pos = int((y_true == 1).sum())
    n_neg = len(y_true) - n_pos
    if not n_pos or not n_neg:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranked = scores[order]
    starts = np.r_[True, ranked[1:] != ranked[:-1]]  # the first of each run of tied scores
    bounds = np.r_[np.flatnonzero(starts), len(scores)]
    run = np.cumsum(starts) - 1
    ranks = np.empty(len(scores))
    ranks[order] = (bounds[run] + bounds[run + 1] + 1) / 2  # the mean of the 1-based ranks a run spans
    return float((ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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
    """Accuracy, balanced accuracy, the majority rate, macro-F1, ROC-AUC, log-loss, ECE and confusion matrix
    at threshold 0.5.

    Balanced accuracy is the mean of the two classes' recalls (of the one class present, when only one
    is); the majority rate is the accuracy of always predicting the commoner class: an accuracy under it
    is worse than no model.

    ``proba`` is the probability of positive (``(n,)``) or a ``(n, 2)`` ``predict_proba`` matrix.
    ROC-AUC is ``None`` when ``y_true`` holds a single class. The confusion matrix is
    ``[[true neg, false pos], [false neg, true pos]]``.
    """
    y_true = np.asarray(y_true).astype(np.int64)
    p_pos = positive_proba(proba)
    if len(y_true) != len(p_pos) or len(y_true) == 0:
        raise ValueError(f"got {len(y_true)} labels and {len(p_pos)} probabilities; expected the same, non-zero count.")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError(f"labels must be 0/1; got values {np.unique(y_true).tolist()}.")
    pred = (p_pos >= 0.5).astype(np.int64)
    (tn, fp), (fn, tp) = confusion = np.bincount(2 * y_true + pred, minlength=4).reshape(2, 2)
    n_pos = tp + fn
    n_neg = tn + fp
    f1 = [2 * t / (2 * t + fp + fn) if t + fp + fn else 0.0 for t in (tn, tp)]  # class 0, class 1
    auc = roc_auc(y_true, p_pos)
    eps = np.finfo(p_pos.dtype).eps
    p = np.clip(p_pos, eps, 1 - eps)
    recalls = [t / n for t, n in ((tn, n_neg), (tp, n_pos)) if n]
    return {
        "n": len(y_true),
        "accuracy": float((tp + tn) / len(y_true)),
        "balanced_accuracy": float(np.mean(recalls)),
        "majority_rate": float(max(n_pos, n_neg) / len(y_true)),
        "macro_f1": float(np.mean(f1)),
        "roc_auc": auc,
        "log_loss": float(-np.mean(np.where(y_true == 1, np.log(p), np.log1p(-p)))),
        "ece": expected_calibration_error(y_true, p_pos),
        "confusion_matrix": confusion.tolist(),
    }
