"""Which head ``retarget`` adapts, and on which rows and columns of the bundle's vectors.

A plain bundle has one head, which reads every row. A routed bundle (encoder ``E|O``: English texts through E,
other languages through O, :mod:`pipeline.heads.routed`) has a head per language side; ``retarget`` adapts the
head of the side most of the target's texts go to (English, or the other languages') on the texts that go there,
and keeps the other head as it is, so the texts routed to it are scored as the source bundle scored them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.heads.routed_linear import mostly_english

SIDE_NAMES = {True: "English", False: "other-language"}


@dataclass(frozen=True)
class Side:
    """The head to adapt and what it reads: every row and column (``cols`` None), or one side of a routed
    bundle (its ``english`` side or the other: rows whose column ``flag`` is 1, or 0; columns ``cols``), with the
    remaining side's fitted scikit-learn head ``kept`` on ``kept_cols``, kept."""

    head: Any
    cols: np.ndarray | None = None
    flag: int = -1
    kept: Any = None
    kept_cols: tuple[int, ...] = ()
    english: bool = True

    @classmethod
    def of(cls, bundle: Any, X: np.ndarray | None = None) -> Side:
        """The side of a loaded ``bundle`` that ``retarget`` adapts: its one head, or for a routed bundle the side
        most of the target's vectors ``X`` route to (English where as many go each way, or no ``X``)."""
        head = bundle.head
        if not hasattr(head, "other_cols"):
            return cls(head)
        flag = int(head.flag)
        english = X is None or mostly_english(X, flag)
        routed = bundle.estimator  # the scikit-learn RoutedClassifier (head.skops), whose other side is kept
        light = {side: getattr(head, f"{side}_") if hasattr(head, f"{side}_") else getattr(head, side)
                 for side in ("english", "other")}
        own, kept = ("english", "other") if english else ("other", "english")
        return cls(light[own], np.asarray(getattr(head, f"{own}_cols"), dtype=np.int64), flag,
                   getattr(routed, f"{kept}_"), tuple(int(c) for c in getattr(routed, f"{kept}_cols")), english)

    @property
    def routed(self) -> bool:
        return self.cols is not None

    @property
    def name(self) -> str:
        """``English`` or ``other-language``: which side of a routed bundle this is."""
        return SIDE_NAMES[self.english]

    def rows(self, X: np.ndarray) -> np.ndarray:
        """Which rows of the bundle's vectors ``X`` this side reads (a boolean mask)."""
        X = np.asarray(X)
        if not self.routed:
            return np.ones(len(X), dtype=bool)
        return (X[:, self.flag] >= 0.5) == self.english

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

        sides = [(adapted, tuple(int(c) for c in self.cols)), (self.kept, self.kept_cols)]
        (english, english_cols), (other, other_cols) = sides if self.english else sides[::-1]
        return RoutedClassifier.of_fitted(english, other, english_cols, other_cols, self.flag, n_features)
