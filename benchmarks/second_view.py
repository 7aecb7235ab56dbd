"""A second view for self-training (measured by bench_second_view.py, not in the product): a character n-gram
student learnt from the target's own texts.

A frozen-encoder teacher pseudo-labels the target's unlabelled texts; a student on another view of the text
(TF-IDF of ``char_wb`` n-grams, any script, + logistic regression) learns from those pseudo-labels (and any
target labels) the target's own words, which the frozen vectors may blur. The prediction averages the
teacher's and the student's probabilities (:func:`combine`).

The student is plain arrays (:meth:`CharStudent.to_arrays`): the n-grams, their idf weights and the logistic
weights, so a bundle could store it without pickle and score it without the teacher's encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.unlabelled.self_train import SelfTrainSettings, select_pseudo


@dataclass(frozen=True)
class ViewSettings:
    """How the second-view student is built and how much it counts."""

    ngram: tuple[int, int] = (1, 4)  # char_wb n-gram lengths
    fraction: float = 1.0  # share of the unlabelled texts pseudo-labelled (the surest of each class)
    weight: float = 0.5  # the student's share of the averaged probability
    c: float = 1.0  # inverse L2 strength of the student's logistic regression
    max_features: int = 50_000  # most n-grams kept (the commonest)
    rounds: int = 1  # co-training rounds: each relabels with the combined prediction

    def __post_init__(self) -> None:
        if not 0 < self.weight <= 1:
            raise OptionError(f"second-view weight must be in (0, 1], got {self.weight}.")
        if not 1 <= self.ngram[0] <= self.ngram[1]:
            raise OptionError(f"second-view n-gram range must be 1 <= low <= high, got {self.ngram}.")
        if self.rounds < 1:
            raise OptionError(f"second-view rounds must be at least 1, got {self.rounds}.")
        SelfTrainSettings(fraction=self.fraction)  # checks the fraction


@dataclass(frozen=True)
class CharStudent:
    """TF-IDF (sublinear tf, idf, L2 rows) of char_wb n-grams + a linear score; P(positive) = sigmoid."""

    grams: tuple[str, ...]
    idf: np.ndarray
    coef: np.ndarray
    intercept: float
    ngram: tuple[int, int]

    def features(self, texts: list[str]) -> Any:
        """The TF-IDF rows of ``texts`` (a sparse matrix), as the student was fitted on."""
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        counts = CountVectorizer(analyzer="char_wb", ngram_range=self.ngram, lowercase=True,
                                 vocabulary={g: i for i, g in enumerate(self.grams)}).transform(texts)
        counts = counts.astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)
        return normalize(counts.multiply(self.idf).tocsr())

    def proba(self, texts: list[str]) -> np.ndarray:
        """P(positive) for each of ``texts``."""
        if not len(texts):
            return np.zeros(0)
        z = self.features(list(texts)) @ self.coef + self.intercept
        return np.exp(-np.logaddexp(0.0, -np.asarray(z).ravel()))

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able metadata with the n-grams, float arrays ``idf`` and ``coef``): no pickle."""
        return ({"grams": list(self.grams), "ngram": list(self.ngram), "intercept": self.intercept},
                {"idf": self.idf, "coef": self.coef})

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> CharStudent:
        """The student :meth:`to_arrays` wrote; fails on arrays that do not match the n-grams."""
        grams, idf, coef = tuple(str(g) for g in meta["grams"]), np.asarray(arrays["idf"], np.float64), \
            np.asarray(arrays["coef"], np.float64)
        if not (len(grams) == len(idf) == len(coef)):
            raise ValueError(f"second-view student: {len(grams)} n-grams but {len(idf)} idf and {len(coef)} weights.")
        low, high = (int(n) for n in meta["ngram"])
        return cls(grams, idf, coef, float(meta["intercept"]), (low, high))


def fit_student(texts: list[str], y: np.ndarray, settings: ViewSettings = ViewSettings(), seed: int = 0) -> CharStudent:
    """A :class:`CharStudent` fitted on ``texts`` with 0/1 labels ``y`` (both classes needed)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=settings.ngram, sublinear_tf=True,
                          max_features=settings.max_features, dtype=np.float64)
    X = vec.fit_transform(list(texts))
    lr = LogisticRegression(C=settings.c, class_weight="balanced", max_iter=1000, random_state=seed).fit(X, y)
    grams = [""] * len(vec.vocabulary_)
    for gram, i in vec.vocabulary_.items():
        grams[i] = gram
    return CharStudent(tuple(grams), vec.idf_.astype(np.float64), lr.coef_[0].astype(np.float64),
                       float(lr.intercept_[0]), settings.ngram)


def combine(p_teacher: np.ndarray, p_student: np.ndarray, weight: float) -> np.ndarray:
    """The averaged probability: ``weight`` of the student's, the rest the teacher's."""
    return (1 - weight) * np.asarray(p_teacher) + weight * np.asarray(p_student)


def teach(p_unlabelled: np.ndarray, unlabelled: list[str], labelled: list[str] = (), y: np.ndarray | None = None,
          settings: ViewSettings = ViewSettings(), seed: int = 0) -> tuple[CharStudent | None, dict[str, Any]]:
    """The student of a teacher whose P(positive) on ``unlabelled`` texts is ``p_unlabelled``: pseudo-labels
    (:func:`select_pseudo`, the teacher's class shares) plus any ``labelled`` texts with labels ``y``; with
    ``rounds`` > 1 the combined prediction relabels the texts for the next student. ``None`` (and the reason
    in the record) when the texts do not give both classes. Returns the student and the manifest record."""
    y = np.zeros(0, np.int64) if y is None else np.asarray(y, np.int64)
    p_teacher, p, student, rounds = np.asarray(p_unlabelled, np.float64), np.asarray(p_unlabelled, np.float64), None, []
    for _ in range(settings.rounds):
        idx, y_pseudo = select_pseudo(p, SelfTrainSettings(fraction=settings.fraction), seed=seed)
        targets = np.concatenate([y, y_pseudo])
        if len(np.unique(targets)) < 2:
            return student, {"rounds_run": rounds, "skipped": "the pseudo-labels and labels hold one class only"}
        student = fit_student(list(labelled) + [unlabelled[i] for i in idx], targets, settings, seed)
        rounds.append({"pseudo_labels": int(len(idx)), "positive": int(y_pseudo.sum()), "labels": int(len(y))})
        p = combine(p_teacher, student.proba(unlabelled), settings.weight)
    return student, {"rounds_run": rounds, "n_grams": len(student.grams) if student else 0}
