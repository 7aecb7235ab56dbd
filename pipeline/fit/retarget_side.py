"""Which head ``retarget`` adapts, and on which rows and columns of the bundle's vectors.

A plain bundle has one head, which reads every row. A routed bundle (encoder ``E|O``: English texts through E,
other languages through O, :mod:`pipeline.heads.routed`) has a head per language side; ``retarget`` adapts the
head of the side most of the target's texts go to (English, or the other languages') on the texts that go there,
and keeps the other head as it is, so the texts routed to it are scored as the source bundle scored them.

With labels, the English side of a routed bundle is adapted on two views (:func:`widened`, :meth:`Side.second_view`):
English texts are also read by the other side's encoder (``E|O`` becomes ``E+O|O``), and the source score is the
sum of the two heads' log-odds, both fitted on the source's labels; the new English head reads both parts. On the
development targets' validation halves this ranks the sites better than the English head alone (on the site the
bundle ranks weakest, ROC-AUC 0.83 -> 0.89) and adds about 2 points at 16-32 labels (docs/benchmarks/retarget.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    kept_head: Any = None  # the kept side's light head (a LinearHead), for the second view
    own_head: Any = None  # a summed English side's (E+O|O) head on its encoder's own columns, before the sum
    own_cols: tuple[int, ...] = ()

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
        summed = english and bool(getattr(routed, "english_own", ()))
        return cls(light[own], np.asarray(getattr(head, f"{own}_cols"), dtype=np.int64), flag,
                   getattr(routed, f"{kept}_"), tuple(int(c) for c in getattr(routed, f"{kept}_cols")), english,
                   light[kept], routed.english if summed else None,
                   tuple(int(c) for c in routed.english_own) if summed else ())

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

    def second_view(self, source: Any, name: str, X: np.ndarray) -> tuple[Side, Any] | None:
        """This English side reading the kept side's columns too, and the source score on them (``source``, this
        side's :class:`~pipeline.fit.retarget.SourceHead`, beside the kept head's); None where there is no second
        view (a plain bundle, the other-language side, a side that reads those columns already, or a head that
        normalises rows that are not of unit length already in the target's vectors ``X``)."""
        from pipeline.fit.retarget import SourceHead
        from pipeline.heads.registry import unit_rows

        if not self.routed or not self.english or set(self.kept_cols) <= set(self.cols.tolist()):
            return None
        rows = np.asarray(X)[self.rows(X)]
        unit = len(rows) > 0 and unit_rows(rows[:, self.cols]) and unit_rows(rows[:, list(self.kept_cols)])
        joined = source.beside(SourceHead.of(self.kept_head, name), unit)
        if joined is None:
            return None
        return replace(self, cols=np.r_[self.cols, np.asarray(self.kept_cols, dtype=np.int64)]), joined

    def first_view(self, name: str) -> Any:
        """For the English side of a bundle whose English head is the sum of its encoder's own head and the other
        side's (``E+O|O``, :class:`~pipeline.heads.routed.RoutedClassifier`'s ``english_own``), that own head as a
        :class:`~pipeline.fit.retarget.SourceHead` on this side's leading columns, as ``fit_recentred`` takes it
        (``first``); None for any other side."""
        from pipeline.fit.retarget import SourceHead

        if self.own_head is None or tuple(int(c) for c in self.cols[:len(self.own_cols)]) != self.own_cols:
            return None
        return SourceHead.of(self.own_head, name)

    def estimator(self, adapted: Any, n_features: int) -> Any:
        """The new bundle's head: ``adapted`` (a scikit-learn head on this side's columns), joined for a routed
        bundle with the other side's head as it was."""
        if not self.routed:
            return adapted
        from pipeline.heads.routed import RoutedClassifier

        sides = [(adapted, tuple(int(c) for c in self.cols)), (self.kept, self.kept_cols)]
        (english, english_cols), (other, other_cols) = sides if self.english else sides[::-1]
        return RoutedClassifier.of_fitted(english, other, english_cols, other_cols, self.flag, n_features)


def widened(encoder: Any) -> Any:
    """A routed ``encoder`` (``E|O``) whose English texts also read the other side's parts (``E+O|O``: the same
    parts, cache and vectors, the English side's columns first), or None where there is nothing to add (not
    routed, or its English side reads every part already). Its spec and fingerprint are those a bundle records."""
    from copy import copy

    from pipeline.encoders.routed import RoutedEncoder
    from pipeline.encoders.spec import parse_spec

    if not isinstance(encoder, RoutedEncoder) or set(encoder.route[1]) <= set(encoder.route[0]):
        return None
    english = tuple(encoder.route[0]) + tuple(i for i in encoder.route[1] if i not in encoder.route[0])
    wide = copy(encoder)
    wide.__dict__.pop("fingerprint", None)  # a cached_property: the route is part of it
    wide.last_stats = {}
    wide.route = (english, tuple(encoder.route[1]))
    wide.spec = str(replace(parse_spec(encoder.spec), route=wide.route))
    return wide
