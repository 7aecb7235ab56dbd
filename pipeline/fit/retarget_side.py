"""Which head ``retarget`` adapts, and on which rows and columns of the bundle's vectors.

A plain bundle has one head, which reads every row. A routed bundle (encoder ``E|O``: English texts through E,
other languages through O, :mod:`pipeline.heads.routed`) has a head per language side; ``retarget`` adapts the
English side's head on the English target texts (the rows whose flag column is 1, E's columns) and keeps the
other side's head as it is, so texts in other languages are scored as the source bundle scored them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Side:
    """The head to adapt and what it reads: every row and column (``cols`` None), or a routed bundle's English
    side (rows whose column ``flag`` is 1, columns ``cols``), with the other side's fitted scikit-learn head
    ``other`` on ``other_cols``, kept."""

    head: Any
    cols: np.ndarray | None = None
    flag: int = -1
    other: Any = None
    other_cols: tuple[int, ...] = ()

    @classmethod
    def of(cls, bundle: Any) -> Side:
        """The side of a loaded ``bundle`` that ``retarget`` adapts."""
        head = bundle.head
        if not hasattr(head, "other_cols"):
            return cls(head)
        english = head.english_ if hasattr(head, "english_") else head.english
        routed = bundle.estimator  # the scikit-learn RoutedClassifier (head.skops), whose other side is kept
        return cls(english, np.asarray(head.english_cols, dtype=np.int64), int(head.flag), routed.other_,
                   tuple(int(c) for c in routed.other_cols))

    @property
    def routed(self) -> bool:
        return self.cols is not None

    def rows(self, X: np.ndarray) -> np.ndarray:
        """Which rows of the bundle's vectors ``X`` this side reads (a boolean mask)."""
        X = np.asarray(X)
        return np.ones(len(X), dtype=bool) if not self.routed else X[:, self.flag] >= 0.5

    def take(self, X: np.ndarray) -> np.ndarray:
        """The rows of ``X`` this side reads, in its columns."""
        X = np.asarray(X)
        return X if not self.routed else X[self.rows(X)][:, self.cols]

    def estimator(self, adapted: Any, n_features: int) -> Any:
        """The new bundle's head: ``adapted`` (a scikit-learn head on this side's columns), joined for a routed
        bundle with the other side's head as it was."""
        if not self.routed:
            return adapted
        from pipeline.heads.routed import RoutedClassifier

        joined = RoutedClassifier(adapted, self.other, tuple(int(c) for c in self.cols), self.other_cols, self.flag)
        joined.english_, joined.other_ = adapted, self.other
        joined.classes_, joined.n_features_in_ = np.array([0, 1]), n_features
        return joined
