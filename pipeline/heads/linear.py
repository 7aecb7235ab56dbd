"""Linear heads as plain arrays, so a bundle predicts with numpy alone: no scikit-learn, no skops.

Importing scikit-learn and skops takes seconds, most of a cold ``predict``. A bundle whose head is
linear (``logreg``, ``sgd``, ``ridge``, ``linear-svm``, or the linear head of a fine-tuned or SetFit
bundle) therefore also keeps ``head.npz`` beside ``head.skops``: the scaler's mean and scale, the
weights, the intercept and the sigmoid that turns the score into a probability,

    p(positive | x) = sigmoid(a * (coef · (x - mean) / scale + intercept) + b)

(``a, b`` are 1, 0 for logistic heads and Platt's sigmoid for margin heads). A head behind a
``Normalizer`` (rows not of unit length, such as pooled word vectors) first divides ``x`` by its L2 norm
(its file is format 2, which older versions refuse with "upgrade" rather than misread). It is saved with
``allow_pickle=False`` and listed in the manifest, so the manifest's digest (and signature) covers it.
:func:`from_estimator` writes it only when its probabilities match the fitted head's within
:data:`TOLERANCE`. A loaded bundle uses it only when ``head.skops`` holds nothing but the plain types
these heads are made of (:func:`plain_skops`); otherwise ``head.skops`` goes through skops and its
allowlist as before, so a bundle skops would refuse is refused either way.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import ReviewTransferError

LINEAR_FILE = "head.npz"
FORMAT = 2  # 2: a head may have a Normalizer in front; heads without one are still written as format 1
TOLERANCE = 1e-5  # largest |p - p_sklearn| accepted when writing; scikit-learn scales float32 rows in float32
SCALER = "scale:StandardScaler"
NORMALIZER = "normalize:Normalizer"
# head name -> the classifier step it must hold (as pipeline.bundle.bundle.head_identity names it)
CLASSIFIERS = {
    "logreg": "clf:LogisticRegression",
    "sgd": "clf:SGDClassifier",
    "ridge": "clf:PlattCalibrated(RidgeClassifier)",
    "linear-svm": "clf:PlattCalibrated(LinearSVM)",
    "finetune-head": "clf:LogisticRegression",  # a fine-tuned linear head (an MLP head has no arrays)
    "finetune-setfit": "clf:LogisticRegression",
}
# (module, class, skops loader) of every node the skops files of those heads hold (tests/test_linear_head.py)
PLAIN_NODES = frozenset({
    ("builtins", "dict", "DictNode"), ("builtins", "list", "ListNode"), ("builtins", "tuple", "TupleNode"),
    ("builtins", "str", "JsonNode"), ("builtins", "int", "JsonNode"), ("builtins", "float", "JsonNode"),
    ("builtins", "bool", "JsonNode"), ("builtins", "NoneType", "JsonNode"), ("builtins", "str", "TypeNode"),
    ("numpy", "ndarray", "NdArrayNode"), ("numpy", "float64", "NdArrayNode"), ("numpy", "int64", "NdArrayNode"),
    ("numpy", "int32", "NdArrayNode"),
    ("sklearn.pipeline", "Pipeline", "ObjectNode"),
    ("sklearn.preprocessing._data", "StandardScaler", "ObjectNode"),
    ("sklearn.preprocessing._data", "Normalizer", "ObjectNode"),
    ("sklearn.preprocessing._label", "LabelBinarizer", "ObjectNode"),
    ("sklearn.linear_model._logistic", "LogisticRegression", "ObjectNode"),
    ("sklearn.linear_model._ridge", "RidgeClassifier", "ObjectNode"),
    ("sklearn.linear_model._stochastic_gradient", "SGDClassifier", "ObjectNode"),
    ("sklearn._loss._loss", "CyHalfBinomialLoss", "LossNode"),
    ("pipeline.heads.calibration", "PlattCalibrated", "ObjectNode"),
    ("pipeline.heads.linear_svm", "LinearSVM", "ObjectNode"),
    ("pipeline.heads.routed", "RoutedClassifier", "ObjectNode"),  # two of the above, one per language side
})


class LinearHeadError(ReviewTransferError, ValueError):
    """``head.npz`` is damaged or does not describe the head its manifest names; the message says what to do."""


@dataclass(frozen=True, eq=False)
class LinearHead:
    """A fitted binary linear head: ``predict_proba`` and ``predict`` over vectors, in numpy."""

    name: str  # the head's name in the manifest, e.g. "logreg"
    identity: tuple[str, ...]  # its pipeline steps, e.g. ("normalize:Normalizer", "clf:LogisticRegression")
    mean: np.ndarray  # (d,) float64; zeros without a scaler
    scale: np.ndarray  # (d,) float64; ones without a scaler
    coef: np.ndarray  # (d,) float64
    intercept: float
    sigmoid: tuple[float, float]  # (a, b)

    classes_ = np.array([0, 1])

    @property
    def normalizes(self) -> bool:
        """Whether rows are divided by their L2 norm first (a ``Normalizer`` in front)."""
        return self.identity[:1] == (NORMALIZER,)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The head's score ``coef · (x - mean) / scale + intercept`` of each row of ``X`` (L2-normalised
        first when :attr:`normalizes`)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.coef):
            raise ValueError(f"head {self.name!r} takes (n, {len(self.coef)}) vectors, got shape {X.shape}.")
        if self.normalizes:  # as scikit-learn's Normalizer: rows of norm 0 stay 0
            norms = np.linalg.norm(X, axis=1, keepdims=True)
            X = X / np.where(norms == 0, 1.0, norms)
        return ((X - self.mean) / self.scale) @ self.coef + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, 2)`` probabilities of class 0 and class 1."""
        a, b = self.sigmoid
        p = np.exp(-np.logaddexp(0.0, -(a * self.decision_function(X) + b)))  # sigmoid, stable both ways
        return np.column_stack([1.0 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class 1 where its probability is at least 0.5, as ``predict`` and :mod:`pipeline.predict.metrics` label."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def arrays(self) -> dict[str, np.ndarray]:
        """What :meth:`save` writes: plain arrays, no object arrays."""
        return {"format": np.int64(FORMAT if self.normalizes else 1), "name": np.str_(self.name),
                "identity": np.array(self.identity, dtype=str), "mean": self.mean, "scale": self.scale,
                "coef": self.coef, "intercept": np.float64(self.intercept),
                "sigmoid": np.array(self.sigmoid, dtype=np.float64)}

    def save(self, path: str | Path) -> None:
        """Write the arrays to ``path`` (an ``.npz`` with no object arrays)."""
        with open(path, "wb") as f:
            np.savez(f, **self.arrays())


def from_estimator(estimator: Any, name: str, identity: Sequence[str], X_check: np.ndarray) -> LinearHead | None:
    """The :class:`LinearHead` of a fitted scikit-learn head named ``name`` with steps ``identity``, or
    ``None`` when it is not one of the linear heads or its probabilities on ``X_check`` differ from the
    estimator's by more than :data:`TOLERANCE`."""
    identity = tuple(identity)
    if not _known(name, identity):
        return None
    steps = estimator.steps if hasattr(estimator, "steps") else [("clf", estimator)]
    clf = steps[-1][1]
    inner, (a, b) = (clf.estimator_, (clf.a_, clf.b_)) if hasattr(clf, "estimator_") else (clf, (1.0, 0.0))
    if (name == "sgd" and inner.loss != "log_loss") or list(getattr(clf, "classes_", [])) != [0, 1]:
        return None  # an SGD head of another loss has no logistic probabilities
    coef = np.atleast_2d(np.asarray(inner.coef_, dtype=np.float64))  # binary RidgeClassifier keeps (d,)
    if coef.ndim != 2 or coef.shape[0] != 1:
        return None
    d = coef.shape[1]
    mean, scale = np.zeros(d), np.ones(d)
    if identity[0] == SCALER:
        scaler = steps[0][1]
        mean = np.asarray(scaler.mean_ if scaler.mean_ is not None else mean, dtype=np.float64)
        scale = np.asarray(scaler.scale_ if scaler.scale_ is not None else scale, dtype=np.float64)
    head = LinearHead(name, identity, mean, scale, coef[0], float(np.ravel(inner.intercept_)[0]), (float(a), float(b)))
    expected = estimator.predict_proba(X_check)[:, 1]
    if not np.allclose(head.predict_proba(X_check)[:, 1], expected, rtol=0, atol=TOLERANCE):
        return None
    return head


def load(path: Path, name: str) -> LinearHead:
    """The head saved at ``path``; :class:`LinearHeadError` unless it is well formed and is head ``name``."""
    return from_arrays(read_arrays(path), name, path)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (no pickle), or :class:`LinearHeadError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise LinearHeadError(f"{path}: not a linear head file ({type(e).__name__}: {e}); refit the bundle.") from None


def from_arrays(stored: dict[str, np.ndarray], name: str, path: Path) -> LinearHead:
    """The :class:`LinearHead` of ``stored`` (:meth:`LinearHead.arrays`) read from ``path``, checked."""
    try:
        arrays = {k: stored[k] for k in ("format", "name", "identity", "mean", "scale", "coef", "intercept", "sigmoid")}
    except KeyError as e:
        raise LinearHeadError(f"{path}: not a linear head file (KeyError: {e}); refit the bundle.") from None
    if int(arrays["format"]) > FORMAT:
        raise LinearHeadError(f"{path}: written by a newer review-transfer (format {int(arrays['format'])}); "
                              "upgrade review-transfer.")
    identity = tuple(str(s) for s in arrays["identity"].reshape(-1))
    if str(arrays["name"]) != name or not _known(name, identity):
        raise LinearHeadError(f"{path.parent / 'manifest.json'}: head.name is {name!r}, but {path.name} holds "
                              f"{' -> '.join(identity)} for {str(arrays['name'])!r}, which is not that head. "
                              "The manifest was edited: restore it or refit the bundle.")
    d = arrays["coef"].shape
    if not (len(d) == 1 and arrays["mean"].shape == d and arrays["scale"].shape == d and arrays["sigmoid"].shape == (2,)
            and all(np.isfinite(arrays[k]).all() for k in ("mean", "scale", "coef", "intercept", "sigmoid"))
            and (arrays["scale"] != 0).all()):
        raise LinearHeadError(f"{path}: malformed arrays (shapes or non-finite values); refit the bundle.")
    a, b = (float(v) for v in arrays["sigmoid"])
    return LinearHead(name, identity, *(np.asarray(arrays[k], dtype=np.float64) for k in ("mean", "scale", "coef")),
                      float(arrays["intercept"]), (a, b))


def plain_skops(path: Path) -> bool:
    """Whether the skops file ``path`` holds only :data:`PLAIN_NODES` (read from its ``schema.json``, nothing
    rebuilt). Anything else, or a file that is not a skops zip, is left to skops' own checks."""
    try:
        with zipfile.ZipFile(path) as z:
            schema = json.loads(z.read("schema.json"))
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile):
        return False
    return all(node in PLAIN_NODES for node in _nodes(schema))


def _nodes(tree: Any) -> list[tuple[Any, Any, Any]]:
    """(module, class, loader) of every node of a skops schema."""
    found, stack = [], [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__class__" in item or "__loader__" in item:
                found.append((item.get("__module__"), item.get("__class__"), item.get("__loader__")))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _known(name: str, identity: tuple[str, ...]) -> bool:
    """Whether ``identity`` is the structure of linear head ``name`` (optionally behind a scaler or normalizer)."""
    front = ((), (SCALER,), (NORMALIZER,))
    return name in CLASSIFIERS and identity[-1:] == (CLASSIFIERS[name],) and identity[:-1] in front
