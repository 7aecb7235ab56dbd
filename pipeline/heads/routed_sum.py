"""The English side of a routed head whose English texts also read the other side's encoder (``E+O|O``), scored by
the sum of two heads' log-odds: the English head's on ``E``'s columns and the other side's head's on ``O``'s.

Both are logistic heads over unit-length parts, so their summed log-odds are one logistic head over both parts'
columns: :func:`summed` folds them into a plain ``Pipeline([("clf", LogisticRegression)])``, which a bundle saves,
loads and predicts with (``head.skops`` and ``head.npz``) as it does any ``logreg`` head, and checks that it gives
the sum on the rows it is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

TOLERANCE = 1e-6  # largest |p - p_sum| accepted on the rows checked


def linear_parts(estimator: Any) -> tuple[np.ndarray, float] | None:
    """(weights on the columns as given, intercept) of a fitted logistic head: a ``LogisticRegression``, optionally
    behind a ``StandardScaler`` (folded in) or a ``Normalizer`` (left out: the identity on unit rows, which
    :func:`summed` checks); None for any other head."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import Normalizer, StandardScaler

    steps = estimator.steps if hasattr(estimator, "steps") else [("clf", estimator)]
    clf = steps[-1][1]
    if not isinstance(clf, LogisticRegression) or list(clf.classes_) != [0, 1]:
        return None
    weights, intercept = np.asarray(clf.coef_, dtype=np.float64)[0], float(np.ravel(clf.intercept_)[0])
    for _, step in steps[:-1]:
        if isinstance(step, StandardScaler):
            scale = np.ones_like(weights) if step.scale_ is None else np.asarray(step.scale_, dtype=np.float64)
            mean = np.zeros_like(weights) if step.mean_ is None else np.asarray(step.mean_, dtype=np.float64)
            weights = weights / scale
            intercept -= float(weights @ mean)
        elif not isinstance(step, Normalizer):
            return None
    return weights, intercept


def summed(english: Any, other: Any, english_at: Sequence[int], other_at: Sequence[int], width: int,
           X_check: np.ndarray) -> Any:
    """One fitted logistic head over ``width`` columns whose log-odds are ``english``'s on columns ``english_at``
    plus ``other``'s on columns ``other_at``; ``ValueError`` unless both are logistic heads and it gives their sum
    on the rows of ``X_check`` (English rows, ``width`` columns) within :data:`TOLERANCE`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    parts = [linear_parts(english), linear_parts(other)]
    if parts[0] is None or parts[1] is None:
        raise ValueError("only two logistic heads sum into one")
    weights = np.zeros(width)
    for (w, _), at in zip(parts, (english_at, other_at)):
        weights[list(at)] += w
    clf = LogisticRegression()
    clf.coef_, clf.intercept_ = weights[None, :], np.array([parts[0][1] + parts[1][1]])
    clf.classes_, clf.n_features_in_, clf.n_iter_ = np.array([0, 1]), width, np.array([0], dtype=np.int32)
    head = Pipeline([("clf", clf)])
    X_check = np.asarray(X_check)
    if len(X_check):
        z = sum(_log_odds(h, X_check[:, list(at)]) for h, at in ((english, english_at), (other, other_at)))
        if not np.allclose(head.predict_proba(X_check)[:, 1], 1 / (1 + np.exp(-z)), rtol=0, atol=TOLERANCE):
            raise ValueError("the folded head does not give the two heads' sum (rows not of unit length?)")
    return head


def _log_odds(head: Any, X: np.ndarray) -> np.ndarray:
    p = np.clip(head.predict_proba(X)[:, 1], 1e-15, 1 - 1e-15)
    return np.log(p / (1 - p))
