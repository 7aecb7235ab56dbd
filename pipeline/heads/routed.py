"""A head per language side, for a routed encoder (``mpnet|multilingual``, :mod:`pipeline.encoders.routed`).

:func:`fit_routed` fits the named head twice on the same labels, once on the columns the English side reads
and once on the other side's, each choosing its own grid point; a ``logreg`` other side fitted on mostly English
labels reads other languages by transfer and takes a fixed, stronger regularisation instead (:func:`other_head`).
:class:`RoutedClassifier` predicts each row with the head of its side, read from the row's English flag (the last
column).

A routed encoder whose English side also reads the other side's encoder (``E+O|O``) with the ``logreg`` head
scores an English text by the sum of both heads' log-odds (:func:`sums`): the English head is fitted on ``E``'s
columns alone and folded with the other side's head into one logistic head over both
(:mod:`pipeline.heads.routed_sum`). On RT's validation films and the development targets this read better than one
head over both encoders side by side (docs/benchmarks/indomain.md, "English texts read by both encoders").
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from pipeline.heads.registry import SELECTION, FitOptions, FittedHead, HeadSpec, Selection, fit_head, get_head
from pipeline.heads.routed_linear import mostly_english, routed_proba

# logreg's C for the other side's head fitted on mostly English labels: chosen on the Chinese and Spanish validation
# halves (docs/benchmarks/multilingual.md); English cross-validation chose the weakest grid point, 1, there
TRANSFER_C = 0.3


class RoutedClassifier(ClassifierMixin, BaseEstimator):
    """``english`` predicts rows whose column ``flag`` is 1 from columns ``english_cols``, ``other`` the rest
    from ``other_cols``. With ``english_own`` (the English columns the other side does not read), ``english`` is
    fitted on those alone and English rows score the sum of both heads' log-odds, folded into one head over
    ``english_cols`` (:func:`~pipeline.heads.routed_sum.summed`). Built fitted by :func:`fit_routed`; :meth:`fit`
    refits clones of both (cross-validation)."""

    english_own: tuple[int, ...] = ()  # bundles saved before the summed English side have none

    def __init__(self, english: Any = None, other: Any = None, english_cols: tuple[int, ...] = (),
                 other_cols: tuple[int, ...] = (), flag: int = -1, english_own: tuple[int, ...] = ()) -> None:
        self.english = english
        self.other = other
        self.english_cols = english_cols
        self.other_cols = other_cols
        self.flag = flag
        self.english_own = english_own

    def fit(self, X: np.ndarray, y: np.ndarray) -> RoutedClassifier:
        X = np.asarray(X)
        own = self.english_own or self.english_cols
        english = clone(self.english).fit(X[:, list(own)], y)
        self.other_ = clone(self.other).fit(X[:, list(self.other_cols)], y)
        self.english_ = self._english_side(english, self.other_, X)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        return self

    def _english_side(self, english: Any, other: Any, X: np.ndarray) -> Any:
        """``english`` as it is, or with :attr:`english_own`, folded with ``other`` into one head over
        :attr:`english_cols` (checked on the English rows of ``X``)."""
        if not self.english_own:
            return english
        from pipeline.heads.routed_sum import summed

        cols = list(self.english_cols)
        at = [[cols.index(c) for c in part] for part in (self.english_own, self.other_cols)]
        rows = np.asarray(X)[np.asarray(X)[:, self.flag] >= 0.5][:, cols]
        return summed(english, other, at[0], at[1], len(cols), rows)

    @classmethod
    def of_fitted(cls, english: Any, other: Any, english_cols: tuple[int, ...], other_cols: tuple[int, ...],
                  flag: int, n_features: int, english_own: tuple[int, ...] = (),
                  X: np.ndarray | None = None) -> RoutedClassifier:
        """A fitted classifier of two sides' fitted scikit-learn heads, as :meth:`fit` would leave it (with
        ``english_own``, the training rows ``X`` check the folded English head)."""
        routed = cls(english, other, english_cols, other_cols, flag, english_own)
        routed.english_ = routed._english_side(english, other, np.empty((0, n_features)) if X is None else X)
        routed.other_ = other
        routed.classes_, routed.n_features_in_ = np.array([0, 1]), n_features
        return routed

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return routed_proba(X, self.flag, (self.english_, self.english_cols), (self.other_, self.other_cols))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


def fit_routed(head: str, X: np.ndarray, y: np.ndarray, layout: Any, options: FitOptions = FitOptions(), *,
               selection: Selection | None = SELECTION) -> FittedHead:
    """:func:`~pipeline.heads.registry.fit_head` of ``head`` on each side's columns of ``X`` (``layout``: a
    :class:`~pipeline.encoders.routed.Layout`), with the same labels, ``options`` and ``selection``;
    ``options.prompt_direction`` is None or a pair, each side's (:func:`pipeline.heads.prompts.encoded_direction`);
    the record as :func:`joined` makes it."""
    directions = options.prompt_direction or (None, None)
    cols, direction, summing = english_reads(head, X, layout, directions[0])
    english = fit_head(head, X[:, list(cols)], y, replace(options, prompt_direction=direction), selection=selection)
    other = fit_head(other_head(head, X, layout), X[:, list(layout.other)], y,
                     replace(options, prompt_direction=directions[1]), selection=selection)
    return joined(english, other, layout, X, summing=summing)


def sums(head: str | HeadSpec, X: np.ndarray, layout: Any) -> bool:
    """Whether English texts score the sum of both sides' heads: a ``logreg`` head on a layout whose English side
    also reads every column of the other side and columns of its own (``E+O|O``), both parts of
    unit length on the English rows of training vectors ``X`` (so the sum folds into one logistic head)."""
    from pipeline.heads.registry import unit_rows

    own = english_own(layout)
    if head != "logreg" or not own or not set(layout.other) <= set(layout.english):
        return False
    rows = np.asarray(X)[np.asarray(X)[:, layout.flag] >= 0.5]
    return len(rows) > 0 and all(unit_rows(rows[:, list(cols)]) for cols in (own, layout.other))


def english_own(layout: Any) -> tuple[int, ...]:
    """The English side's columns that the other side does not read (``E``'s of ``E+O|O``)."""
    other = set(layout.other)
    return tuple(c for c in layout.english if c not in other)


def english_reads(head: str | HeadSpec, X: np.ndarray, layout: Any,
                  direction: np.ndarray | None) -> tuple[tuple[int, ...], np.ndarray | None, bool]:
    """(the columns the English head is fitted on, its prompt direction, whether English texts score the sum of
    both heads, :func:`sums`): the English side's, or where it sums, its own columns alone and the prompt direction
    (of the English side's columns) cut to them and made unit again (the direction of the own part's prompt
    vectors, the parts being of unit length)."""
    if not sums(head, X, layout):
        return tuple(layout.english), direction, False
    own, english = english_own(layout), list(layout.english)
    if direction is None:
        return own, None, True
    cut = np.asarray(direction)[[english.index(c) for c in own]]
    return own, cut / max(float(np.linalg.norm(cut)), 1e-12), True


def transfers(head: str | HeadSpec, X: np.ndarray, layout: Any) -> bool:
    """Whether the other side's ``head`` reads other languages by transfer: a ``logreg`` fitted on training rows
    ``X`` that are mostly English."""
    return head == "logreg" and mostly_english(X, layout.flag)


def other_head(head: str | HeadSpec, X: np.ndarray, layout: Any) -> str | HeadSpec:
    """The head the other side fits: ``logreg`` at :data:`TRANSFER_C` when it reads other languages by transfer
    (:func:`transfers`: English folds cannot choose C for that), else ``head`` as named."""
    if not transfers(head, X, layout):
        return head
    return replace(get_head("logreg"), grid={"C": [TRANSFER_C]}, default={"C": TRANSFER_C})


def joined(english: FittedHead, other: FittedHead, layout: Any, X: np.ndarray, summing: bool = False) -> FittedHead:
    """One :class:`RoutedClassifier` record of the two sides' fitted heads on training vectors ``X``: the English
    head's params with the other head's under ``other``, and the cross-validated accuracy of the side most rows
    of ``X`` go to (the English head's on English reviews; the other head's on Spanish ones, where the English
    head's columns are zeros for most rows and its score says nothing). With ``summing`` (:func:`sums`) the
    English head was fitted on the English side's own columns, and English rows score both heads' log-odds summed."""
    own = english_own(layout) if summing else ()
    routed = RoutedClassifier.of_fitted(english.estimator, other.estimator, tuple(layout.english),
                                        tuple(layout.other), layout.flag, X.shape[1], own, X)
    main = english if mostly_english(X, layout.flag) else other
    summed_note = "; English texts also scored by the other-language head (log-odds summed)" if summing else ""
    return replace(english, estimator=routed, params={**english.params, "other": other.params},
                   search=f"{english.search}{summed_note}; other languages: {other.search}",
                   cv_accuracy=main.cv_accuracy, cv_sd=main.cv_sd,
                   fit_seconds=english.fit_seconds + other.fit_seconds)


def fit_any(head: str, X: np.ndarray, y: np.ndarray, layout: Any = None, options: FitOptions = FitOptions(), *,
            selection: Selection | None = SELECTION) -> FittedHead:
    """:func:`fit_routed` with a ``layout`` (a routed encoder's vectors), else plain ``fit_head``."""
    if layout is None:
        return fit_head(head, X, y, options, selection=selection)
    return fit_routed(head, X, y, layout, options, selection=selection)
