"""A self-trained student that keeps its teacher's class balance on the unlabelled texts.

A student learnt from labelled rows of one kind (English reviews) and pseudo-labelled rows of another (Chinese
ones) can tell the two apart, so it learns the pseudo-labels' class balance as a bias of the new rows and pushes
their uncertain texts to the majority class: on Chinese validation halves with 1,000 English labels, the
teacher called 41% of the texts positive and its student 33%. :func:`with_mean` moves the student's intercept
back until its mean probability of positive on those texts is the teacher's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

STEPS = 60  # bisection steps on the intercept's shift (within ±SPAN: far below any probability's precision)
SPAN = 20.0


def mean_positive(estimator: Any, X: np.ndarray) -> float:
    """``estimator``'s mean probability of positive on the rows of ``X`` (0.5 for none)."""
    return float(estimator.predict_proba(X)[:, 1].mean()) if len(X) else 0.5


def linear_step(estimator: Any) -> Any:
    """The step of a fitted scikit-learn head that holds its linear intercept (``None`` if it has none)."""
    step = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    step = getattr(step, "estimator_", step)  # a Platt-calibrated margin head
    return step if hasattr(step, "intercept_") else None


def with_mean(estimator: Any, X: np.ndarray, target: float) -> float:
    """Move the intercept of fitted linear head ``estimator`` (in place) until its mean probability of positive
    on ``X`` is ``target``; returns the shift (0 for no rows or a head with no intercept)."""
    step = linear_step(estimator)
    if step is None or not len(X):
        return 0.0
    base = np.array(step.intercept_, dtype=np.float64, copy=True)
    lo, hi = -SPAN, SPAN
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        step.intercept_ = base + mid
        lo, hi = (mid, hi) if mean_positive(estimator, X) < target else (lo, mid)
    shift = (lo + hi) / 2
    step.intercept_ = base + shift
    return shift
