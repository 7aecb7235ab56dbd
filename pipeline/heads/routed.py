"""A head per language side, for a routed encoder (``mpnet|multilingual``, :mod:`pipeline.encoders.routed`).

:func:`fit_routed` fits the named head twice on the same labels, once on the columns the English side reads
and once on the other side's, each choosing its own grid point; a ``logreg`` other side fitted on mostly English
labels reads other languages by transfer and takes a fixed, stronger regularisation instead (:func:`other_head`).
:class:`RoutedClassifier` predicts each row with the head of its side, read from the row's English flag (the last
column).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from pipeline.heads.registry import FittedHead, HeadSpec, fit_head, get_head
from pipeline.heads.routed_linear import mostly_english, routed_proba

# logreg's C for the other side's head fitted on mostly English labels: chosen on the Chinese and Spanish validation
# halves (docs/benchmarks/multilingual.md); English cross-validation chose the weakest grid point, 1, there
TRANSFER_C = 0.3


class RoutedClassifier(ClassifierMixin, BaseEstimator):
    """``english`` predicts rows whose column ``flag`` is 1 from columns ``english_cols``, ``other`` the rest
    from ``other_cols``. Built fitted by :func:`fit_routed`; :meth:`fit` refits clones of both (cross-validation)."""

    def __init__(self, english: Any = None, other: Any = None, english_cols: tuple[int, ...] = (),
                 other_cols: tuple[int, ...] = (), flag: int = -1) -> None:
        self.english = english
        self.other = other
        self.english_cols = english_cols
        self.other_cols = other_cols
        self.flag = flag

    def fit(self, X: np.ndarray, y: np.ndarray) -> RoutedClassifier:
        X = np.asarray(X)
        self.english_ = clone(self.english).fit(X[:, list(self.english_cols)], y)
        self.other_ = clone(self.other).fit(X[:, list(self.other_cols)], y)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        return self

    @classmethod
    def of_fitted(cls, english: Any, other: Any, english_cols: tuple[int, ...], other_cols: tuple[int, ...],
                  flag: int, n_features: int) -> RoutedClassifier:
        """A fitted classifier of two sides' fitted scikit-learn heads, as :meth:`fit` would leave it."""
        routed = cls(english, other, english_cols, other_cols, flag)
        routed.english_, routed.other_ = english, other
        routed.classes_, routed.n_features_in_ = np.array([0, 1]), n_features
        return routed

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return routed_proba(X, self.flag, (self.english_, self.english_cols), (self.other_, self.other_cols))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


def fit_routed(head: str, X: np.ndarray, y: np.ndarray, layout: Any, **options: Any) -> FittedHead:
    """:func:`~pipeline.heads.registry.fit_head` of ``head`` on each side's columns of ``X`` (``layout``: a
    :class:`~pipeline.encoders.routed.Layout`), with the same labels and ``options``; ``prompt_direction`` is
    None or a pair, each side's (:func:`pipeline.heads.prompts.encoded_direction`); the record as :func:`joined`
    makes it."""
    directions = options.pop("prompt_direction", None) or (None, None)
    english = fit_head(head, X[:, list(layout.english)], y, **options, prompt_direction=directions[0])
    other = fit_head(other_head(head, X, layout), X[:, list(layout.other)], y, **options, prompt_direction=directions[1])
    return joined(english, other, layout, X)


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


def joined(english: FittedHead, other: FittedHead, layout: Any, X: np.ndarray) -> FittedHead:
    """One :class:`RoutedClassifier` record of the two sides' fitted heads on training vectors ``X``: the English
    head's params with the other head's under ``other``, and the cross-validated accuracy of the side most rows
    of ``X`` go to (the English head's on English reviews; the other head's on Spanish ones, where the English
    head's columns are zeros for most rows and its score says nothing)."""
    routed = RoutedClassifier.of_fitted(english.estimator, other.estimator, tuple(layout.english),
                                        tuple(layout.other), layout.flag, X.shape[1])
    main = english if mostly_english(X, layout.flag) else other
    return replace(english, estimator=routed, params={**english.params, "other": other.params},
                   search=f"{english.search}; other languages: {other.search}", cv_accuracy=main.cv_accuracy,
                   cv_sd=main.cv_sd, fit_seconds=english.fit_seconds + other.fit_seconds)


def fit_any(head: str, X: np.ndarray, y: np.ndarray, layout: Any = None, **options: Any) -> FittedHead:
    """:func:`fit_routed` with a ``layout`` (a routed encoder's vectors), else plain ``fit_head``."""
    if layout is None:
        return fit_head(head, X, y, **options)
    return fit_routed(head, X, y, layout, **options)
