"""Stage two: scikit-learn classifiers ("heads") over cached vectors, each with a small grid.

A head is a :class:`~sklearn.pipeline.Pipeline` of an optional ``StandardScaler`` (or ``Normalizer``)
and a classifier, so preprocessing is saved with the model. Heads without ``predict_proba``
(``linear-svm``, ``rbf-svm``, ``ridge``) are wrapped in :class:`~pipeline.calibration.PlattCalibrated`.
:func:`fit_head` picks the grid point by stratified (group-aware when possible) cross-validated
accuracy when the data allow it, and falls back to fixed defaults when they are too small to split.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import ParameterGrid, StratifiedGroupKFold, StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_array
from threadpoolctl import threadpool_limits

from pipeline import ReviewTransferError
from pipeline.calibration import MIN_PER_CLASS_PER_FOLD, PlattCalibrated
from pipeline.linear_svm import LinearSVM
from pipeline.out_of_core import ALPHA as SGD_ALPHA
from pipeline.out_of_core import make_sgd

DEFAULT_HEAD = "logreg"
MAX_FOLDS = 5
LARGE_N, LARGE_N_FOLDS = 2000, 3  # above 2,000 labels, 3 folds rank grid points as well and cost less
MIN_GROUPS_PER_FOLD = 2  # group-aware CV only when every fold can hold this many groups
EARLY_STOP_N = 1000  # mlp and hist-gb hold out 10% to stop early from this training size on
CLASS_WEIGHTS = (None, "balanced")


class HeadError(ReviewTransferError, ValueError):
    """A head cannot be built or fitted as asked; the message says what to change."""


@dataclass(frozen=True)
class HeadSpec:
    """One registered classifier: how to build it, its grid and its fixed defaults."""

    name: str
    summary: str
    factory: Callable[[int, int | None], BaseEstimator]  # (seed, training size) -> unfitted classifier
    grid: Mapping[str, Sequence[Any]]  # classifier parameter -> candidate values
    default: Mapping[str, Any]  # used when the data are too small to search
    scale: bool = False  # put a StandardScaler in front
    normalize: bool = False  # put a Normalizer (unit L2 norm) in front instead
    calibrate: bool = False  # no predict_proba: wrap in PlattCalibrated
    balanced: Mapping[str, Any] | None = field(default_factory=lambda: {"class_weight": "balanced"})
    at_most_n: str | None = None  # integer parameter that may not exceed the training size
    epoch_budget: bool = False  # max_iter is a training budget: hitting it is not a convergence failure
    # scores every grid point of a fold from one fit: (template, points, X_train, y_train, X_val) -> margins
    grid_path: Callable[..., np.ndarray] | None = None


def _early_stop(n: int | None) -> bool:
    return n is not None and n >= EARLY_STOP_N


def _knn_grid_path(template: BaseEstimator, points: list[dict[str, Any]], X_train: np.ndarray,
                   y_train: np.ndarray, X_val: np.ndarray) -> np.ndarray:
    """Margins of a distance-weighted k-NN for every ``n_neighbors`` in ``points`` from one neighbour
    query at the largest k (the nearest k of a query are the first k of its nearest max-k)."""
    ks = [p["n_neighbors"] for p in points]
    dist, ind = clone(template).set_params(n_neighbors=max(ks)).fit(X_train, y_train).kneighbors(X_val)
    positive = y_train[ind] == 1
    margins = []
    for k in ks:
        d = dist[:, :k]
        exact = d == 0  # as scikit-learn does: exact matches, when a query has any, take all the weight
        with np.errstate(divide="ignore"):
            w = np.where(exact.any(axis=1, keepdims=True), exact, 1.0 / d)
        margins.append((w * positive[:, :k]).sum(axis=1) / w.sum(axis=1) - 0.5)
    return np.stack(margins)


def _ridge_grid_path(template: BaseEstimator, points: list[dict[str, Any]], X_train: np.ndarray,
                     y_train: np.ndarray, X_val: np.ndarray) -> np.ndarray:
    """Margins of a ridge classifier for every ``alpha`` in ``points`` from one eigendecomposition.

    Solves RidgeClassifier's problem (targets -1/+1, a free intercept, class weights as sample
    weights) for all alphas at once: with centred, weight-scaled data ``Z`` and ``Z Zᵀ = U S Uᵀ``
    (or ``Zᵀ Z`` when there are more rows than columns), each alpha costs only a rescaling by
    ``1 / (S + alpha)``.
    """
    X_train, X_val = np.asarray(X_train, dtype=np.float64), np.asarray(X_val, dtype=np.float64)
    weight = compute_sample_weight(template.class_weight, y_train)
    targets = np.where(y_train == 1, 1.0, -1.0)
    x_mean, t_mean = weight @ X_train / weight.sum(), weight @ targets / weight.sum()
    root = np.sqrt(weight)
    Z, t = (X_train - x_mean) * root[:, None], (targets - t_mean) * root
    V_val = X_val - x_mean
    if len(Z) < Z.shape[1]:  # dual form: w = Zᵀ U (S + alpha)⁻¹ Uᵀ t
        s, U = np.linalg.eigh(Z @ Z.T)
        proj, basis = U.T @ t, V_val @ Z.T @ U
    else:  # primal form: w = V (S + alpha)⁻¹ Vᵀ Zᵀ t
        s, V = np.linalg.eigh(Z.T @ Z)
        proj, basis = V.T @ (Z.T @ t), V_val @ V
    s = np.clip(s, 0.0, None)
    return np.stack([basis @ (proj / (s + p["alpha"])) + t_mean for p in points])


HEADS: dict[str, HeadSpec] = {
    spec.name: spec
    for spec in (
        HeadSpec(
            "logreg", "L2 logistic regression",
            lambda seed, n: LogisticRegression(max_iter=2000, random_state=seed),
            {"C": [0.001, 0.01, 0.1, 1.0]}, {"C": 0.1}, scale=True,
        ),
        HeadSpec(
            "linear-svm", "linear SVM (squared hinge, by L-BFGS), Platt-calibrated",
            lambda seed, n: LinearSVM(),
            {"C": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]}, {"C": 1e-3}, scale=True, calibrate=True,
        ),
        HeadSpec(
            "rbf-svm", "RBF-kernel SVM, Platt-calibrated",
            lambda seed, n: SVC(kernel="rbf", gamma="scale", random_state=seed),
            {"C": [1.0, 10.0]}, {"C": 1.0}, scale=True, calibrate=True,
        ),
        HeadSpec(
            "knn", "k nearest neighbours by cosine (euclidean on unit vectors), distance-weighted",
            lambda seed, n: KNeighborsClassifier(weights="distance", algorithm="brute"),
            {"n_neighbors": [5, 15, 45]}, {"n_neighbors": 15}, normalize=True, balanced=None,
            at_most_n="n_neighbors", grid_path=_knn_grid_path,
        ),
        HeadSpec(
            "random-forest", "random forest of 100 trees",
            lambda seed, n: RandomForestClassifier(n_estimators=100, random_state=seed),
            {"min_samples_leaf": [1, 5]}, {"min_samples_leaf": 1},
        ),
        HeadSpec(
            "hist-gb", "histogram gradient boosting",
            lambda seed, n: HistGradientBoostingClassifier(
                max_iter=200, early_stopping=_early_stop(n), random_state=seed
            ),
            {"max_leaf_nodes": [7, 31]}, {"max_leaf_nodes": 7},
        ),
        HeadSpec(
            "mlp", "one-hidden-layer perceptron, 128 units",
            lambda seed, n: MLPClassifier(
                (128,), max_iter=200, early_stopping=_early_stop(n), random_state=seed
            ),
            {"alpha": [1e-4, 1e-2, 1.0]}, {"alpha": 1e-2}, scale=True, balanced=None, epoch_budget=True,
        ),
        HeadSpec(
            "ridge", "ridge classifier, Platt-calibrated",
            lambda seed, n: RidgeClassifier(),
            {"alpha": [1.0, 10.0, 100.0, 1000.0, 10000.0]}, {"alpha": 100.0}, scale=True, calibrate=True,
            grid_path=_ridge_grid_path,
        ),
        HeadSpec(
            "nb", "Gaussian naive Bayes",
            lambda seed, n: GaussianNB(),
            {"var_smoothing": [1e-9, 1e-5, 1e-2, 1e-1]}, {"var_smoothing": 1e-9},
            balanced={"priors": [0.5, 0.5]},
        ),
        HeadSpec(
            "sgd", "logistic regression by averaged SGD; pipeline.out_of_core.fit_sgd trains it out of core",
            lambda seed, n: make_sgd(seed),
            {"alpha": [1e-5, 1e-4, 1e-3, 1e-2]}, {"alpha": SGD_ALPHA}, scale=True,
        ),
    )
}


def get_head(name: str) -> HeadSpec:
    """The registered head ``name``; an unknown name raises :class:`HeadError` listing the choices."""
    try:
        return HEADS[name]
    except KeyError:
        choices = "; ".join(f"{n} ({spec.summary})" for n, spec in HEADS.items())
        raise HeadError(f"unknown head {name!r}; choose one of: {choices}.") from None


def check_class_weight(class_weight: str | None) -> None:
    """Raise :class:`HeadError` unless ``class_weight`` is ``None`` or ``'balanced'``."""
    if class_weight not in CLASS_WEIGHTS:
        raise HeadError(f"class_weight must be None or 'balanced', got {class_weight!r}.")


def _classifier(spec: HeadSpec, params: Mapping[str, Any] | None, class_weight: str | None, seed: int,
                n_train: int | None) -> BaseEstimator:
    """The unfitted classifier of ``spec`` with ``params`` (default: its defaults) and class weights."""
    clf = spec.factory(seed, n_train)
    values = dict(spec.default if params is None else params)
    unknown = set(values) - set(clf.get_params())
    if unknown:
        raise HeadError(f"head {spec.name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(spec.grid)}.")
    if spec.at_most_n and n_train is not None and spec.at_most_n in values:
        values[spec.at_most_n] = min(values[spec.at_most_n], n_train)
    if class_weight == "balanced":
        if spec.balanced is None:
            warnings.warn(f"head {spec.name!r} has no class weights; ignoring class_weight='balanced'.", stacklevel=3)
        else:
            values.update(spec.balanced)
    return clf.set_params(**values)


def _preprocessing(spec: HeadSpec) -> list[tuple[str, BaseEstimator]]:
    """The steps in front of the classifier: L2 normalisation or standard scaling, or none."""
    if spec.normalize:
        return [("normalize", Normalizer())]
    return [("scale", StandardScaler())] if spec.scale else []


def build_head(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    class_weight: str | None = None,
    seed: int = 0,
    n_train: int | None = None,
) -> Pipeline:
    """An unfitted head: ``[StandardScaler | Normalizer] -> classifier`` with ``params`` (default: the
    head's defaults); margin classifiers are wrapped in :class:`~pipeline.calibration.PlattCalibrated`.

    ``n_train`` (the training size) caps parameters such as ``n_neighbors`` that may not exceed it.
    """
    spec = get_head(name)
    check_class_weight(class_weight)
    clf = _classifier(spec, params, class_weight, seed, n_train)
    return Pipeline([*_preprocessing(spec), ("clf", PlattCalibrated(clf) if spec.calibrate else clf)])


@dataclass(frozen=True)
class FittedHead:
    """A fitted head and how it was chosen."""

    name: str
    estimator: Pipeline
    params: dict[str, Any]  # chosen grid point (classifier parameter names)
    search: str  # e.g. "StratifiedGroupKFold(5) over 4 points", or why there was none
    cv_accuracy: float | None  # mean validation accuracy of the chosen point
    fit_seconds: float


def plan_cv(y: np.ndarray, groups: Sequence[Any] | None, seed: int) -> tuple[Any | None, str]:
    """A CV splitter for the grid search, or ``None`` with the reason when the data are too small.

    Folds: up to 5 (3 above 2,000 examples), keeping at least 8 examples of the rarer class per
    validation fold. Group-aware (StratifiedGroupKFold) when groups are given and there are enough of them.
    """
    rarer = int(np.bincount(y, minlength=2).min())
    n_splits = min(LARGE_N_FOLDS if len(y) > LARGE_N else MAX_FOLDS, rarer // MIN_PER_CLASS_PER_FOLD)
    if n_splits < 2:
        return None, (
            f"defaults (rarer class has {rarer} examples; searching needs "
            f"{2 * MIN_PER_CLASS_PER_FOLD})"
        )
    if groups is not None and len(set(groups)) >= MIN_GROUPS_PER_FOLD * n_splits:
        return StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed), f"StratifiedGroupKFold({n_splits})"
    return StratifiedKFold(n_splits, shuffle=True, random_state=seed), f"StratifiedKFold({n_splits})"


@dataclass(frozen=True)
class Folds:
    """The validation folds of one training sample (``None`` when it is too small to split), and how made."""

    splits: list[tuple[np.ndarray, np.ndarray]] | None
    how: str


def plan_folds(y: np.ndarray, groups: Sequence[Any] | None, seed: int) -> Folds:
    """The folds :func:`plan_cv`'s splitter makes for ``y`` and ``groups``, made once so that every head
    fitted on the same sample can share them (group-aware splitting of a large sample takes 0.1 s)."""
    y = np.asarray(y)
    groups = None if groups is None or any(g is None for g in groups) else list(groups)
    cv, how = plan_cv(y, groups, seed)
    return Folds(None if cv is None else list(cv.split(np.zeros((len(y), 1)), y, groups)), how)


def fit_head(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    *,
    groups: Sequence[Any] | None = None,
    class_weight: str | None = None,
    seed: int = 0,
    search: bool = True,
    n_jobs: int | None = None,
    folds: Folds | None = None,
) -> FittedHead:
    """Fit head ``name`` on vectors ``X`` and 0/1 labels ``y``, choosing its grid point by CV accuracy.

    The folds are :func:`plan_folds` of ``y``, ``groups`` and ``seed`` (pass ``folds`` to reuse them
    across heads). Each fold fits its scaler once and every grid point on it; the chosen point is
    then refitted on all the data. Margin heads are Platt-calibrated on the chosen point's
    out-of-fold decision values from those same folds, so calibration costs no extra fits.
    ``search=False`` uses the fixed defaults. ``n_jobs`` runs the folds in parallel.
    """
    spec = get_head(name)
    check_class_weight(class_weight)
    X = check_array(X, dtype=np.float32, input_name="X")
    y = np.asarray(y)
    if y.shape != (len(X),):
        raise HeadError(f"y has shape {y.shape}; expected ({len(X)},), one 0/1 label per row of X.")
    counts = np.bincount(y.astype(np.int64), minlength=2) if y.size else np.zeros(2, int)
    if set(np.unique(y).tolist()) - {0, 1} or counts.min() < 2:
        raise HeadError(
            f"head {name!r} needs labels 0/1 with at least 2 examples of each class; got counts "
            f"{ {int(k): int(v) for k, v in zip(*np.unique(y, return_counts=True))} }. Use a larger or balanced budget."
        )
    if folds is None:
        folds = plan_folds(y, groups, seed) if search or spec.calibrate else Folds(None, "")
    elif folds.splits is not None and max(max(t.max(), v.max()) for t, v in folds.splits) >= len(y):
        raise HeadError(f"folds index rows beyond the {len(y)} of X; make them with plan_folds on this sample.")
    with _fit_context(spec):
        return _search_and_fit(spec, X, y, folds, class_weight, seed, search, n_jobs)


@contextlib.contextmanager
def _fit_context(spec: HeadSpec) -> Iterator[None]:
    """Fit single-threaded (parallelism comes from ``n_jobs`` over folds); silence max_iter
    warnings of heads trained to an epoch budget.

    BLAS/OpenMP threads spin when the cores are busy: on 2 shared cores, hist-gb on 7,000 MiniLM
    vectors took 69 s with 2 threads and 11 s with 1; MLP and hist-gb on 240 rows ran 8x slower.
    """
    with threadpool_limits(1), warnings.catch_warnings():
        if spec.epoch_budget:
            warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _search_and_fit(
    spec: HeadSpec, X: np.ndarray, y: np.ndarray, folds: Folds,
    class_weight: str | None, seed: int, search: bool, n_jobs: int | None,
) -> FittedHead:
    start = time.perf_counter()
    splits, how = folds.splits, folds.how if search else "defaults (search off)"
    params, score, oof = dict(spec.default), None, None
    if splits is not None and (search or spec.calibrate):  # margin heads cross-validate the defaults to calibrate
        smallest_train = min(len(train) for train, _ in splits)
        grid = {
            k: [v for v in vals if not (k == spec.at_most_n and v > smallest_train)] or [min(vals)]
            for k, vals in spec.grid.items()
        } if search else {k: [v] for k, v in spec.default.items()}
        points = list(ParameterGrid(grid))
        template = _classifier(spec, None, class_weight, seed, smallest_train)
        scores, decisions = _cross_validate(spec, template, points, X, y, splits, n_jobs)
        best = int(np.argmax(scores))  # the first of equal scores, as GridSearchCV picks
        if search:
            params = {k: _plain(v) for k, v in points[best].items()}
            score = float(scores[best])
            how = f"{how} over {len(points)} points"
        oof = decisions[best]
    estimator = build_head(spec.name, params, class_weight=class_weight, seed=seed, n_train=len(y))
    estimator.fit(X, y, **({"clf__oof_decision": oof} if spec.calibrate else {}))
    return FittedHead(spec.name, estimator, params, how, score, time.perf_counter() - start)


def _cross_validate(
    spec: HeadSpec, template: BaseEstimator, points: list[dict[str, Any]], X: np.ndarray, y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]], n_jobs: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean validation accuracy of each grid point over ``splits``, and each point's out-of-fold margins
    (decision values, or P(positive) - 0.5), shape ``(len(points), len(y))``."""
    from joblib import Parallel, delayed

    per_fold = Parallel(n_jobs=n_jobs)(
        delayed(_fold_margins)(spec, template, points, X[train], y[train], X[val]) for train, val in splits
    )
    margins = np.empty((len(points), len(y)))
    accuracy = np.empty((len(splits), len(points)))
    for i, ((_, val), fold) in enumerate(zip(splits, per_fold)):
        margins[:, val] = fold
        accuracy[i] = ((fold > 0) == y[val]).mean(axis=1)
    return accuracy.mean(axis=0), margins


def _fold_margins(spec: HeadSpec, template: BaseEstimator, points: list[dict[str, Any]], X_train: np.ndarray,
                  y_train: np.ndarray, X_val: np.ndarray) -> np.ndarray:
    """Validation margins of every grid point fitted on one fold, preprocessing fitted once."""
    steps = _preprocessing(spec)
    if steps:
        prep = steps[0][1].fit(X_train)
        X_train, X_val = prep.transform(X_train), prep.transform(X_val)
    if spec.grid_path is not None:
        return spec.grid_path(template, points, X_train, y_train, X_val)
    return np.stack([_margin(clone(template).set_params(**p).fit(X_train, y_train), X_val) for p in points])


def _margin(clf: BaseEstimator, X: np.ndarray) -> np.ndarray:
    """Positive where ``clf`` predicts class 1: its decision values, or P(positive) - 0.5."""
    if hasattr(clf, "decision_function"):
        return clf.decision_function(X)
    return clf.predict_proba(X)[:, 1] - 0.5


def _plain(value: Any) -> Any:
    """Numpy scalars from the grid as plain Python values, for JSON."""
    return value.item() if isinstance(value, np.generic) else value
