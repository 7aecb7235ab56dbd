"""Stage two: scikit-learn classifiers ("heads") over cached vectors, each with a small grid.

A head is a :class:`~sklearn.pipeline.Pipeline` of an optional ``StandardScaler`` (or ``Normalizer``)
and a classifier, so preprocessing is saved with the model. The linear heads (``logreg``, ``linear-svm``,
``ridge``) take rows of unit length (sentence embeddings) as they are and L2-normalise other rows (pooled
word vectors) with a ``Normalizer``, their regularisation rescaled to the normalised rows' spread
(:attr:`HeadSpec.spread_scaled`). Heads without ``predict_proba``
(``linear-svm``, ``rbf-svm``, ``ridge``) are wrapped in :class:`~pipeline.heads.calibration.PlattCalibrated`.
:func:`fit_head` picks the grid point by repeated stratified (group-aware when possible)
cross-validation, keeping the head's default unless another point beats it clearly (see
:class:`Selection`), when the data allow it, and falls back to the defaults when they are too small to split.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from pipeline.heads import prompts
from pipeline.heads.calibration import INTERCEPT_WEIGHT, MIN_PER_CLASS_PER_FOLD, PlattCalibrated, margins
from pipeline.heads.linear_svm import LinearSVM
from pipeline.heads.out_of_core import ALPHA as SGD_ALPHA
from pipeline.heads.out_of_core import make_sgd

DEFAULT_HEAD = "logreg"
MAX_FOLDS = 5
LARGE_N, LARGE_N_FOLDS = 2000, 3  # above 2,000 labels, 3 folds rank grid points as well and cost less
MIN_GROUPS_PER_FOLD = 2  # group-aware CV only when every fold can hold this many groups
EARLY_STOP_N = 1000  # mlp and hist-gb hold out 10% to stop early from this training size on
# The spread (mean squared distance to their centroid) of the unit-length rows the linear heads' grids were
# chosen on: MiniLM's on RT (0.79). Normalised rows of another spread get their regularisation rescaled.
REFERENCE_SPREAD = 0.8
# knn's largest k, and its default on unit-length rows: distance-weighted votes of every training row (up to
# this many) led k=45 from 64 labels up on RT's validation split (README, "Choosing the grid point"). The cap
# keeps a neighbour query, in CV and in predict, at most this wide on large training sets.
KNN_MAX_K = 1000
CLASS_WEIGHTS = (None, "balanced")


@dataclass(frozen=True)
class Selection:
    """How :func:`fit_head` picks a grid point by cross-validation.

    The K-fold split is repeated with fresh shuffles until about ``rows`` validation predictions have
    been made (``ceil(rows / n)`` repeats, at most ``max_repeats``): small samples get two splits,
    large ones one. A standard error (SE) is the best point's fold accuracies' sd over the square
    root of K. The head's default is kept unless the best point's mean beats it by more than
    ``keep_default_se`` SEs: on few labels most of a grid's differences are fold noise, and the
    defaults are the points that did best across budgets on a validation split. Otherwise the point
    is the most strongly regularised (the first in grid order) within ``one_se`` SEs of the best.
    ``Selection(max_repeats=1, one_se=0, keep_default_se=0)`` is a single K-fold split and the best
    mean, as scikit-learn's ``GridSearchCV`` picks.
    """

    rows: int = 1000
    max_repeats: int = 2
    one_se: float = 0.5
    keep_default_se: float = 2.0

    def repeats(self, n: int) -> int:
        """How many K-fold splits a sample of ``n`` rows gets."""
        return int(min(self.max_repeats, max(1, -(-self.rows // max(n, 1)))))


SELECTION = Selection()


class HeadError(ReviewTransferError, ValueError):
    """A head cannot be built or fitted as asked; the message says what to change."""


@dataclass(frozen=True)
class HeadSpec:
    """One registered classifier: how to build it, its grid and its fixed defaults."""

    name: str
    summary: str
    factory: Callable[[int, int | None], BaseEstimator]  # (seed, training size) -> unfitted classifier
    # classifier parameter -> candidate values, from the strongest regularisation to the weakest
    # (the one-standard-error rule prefers earlier points)
    grid: Mapping[str, Sequence[Any]]
    default: Mapping[str, Any]  # used when the data are too small to search
    scale: bool = False  # put a StandardScaler in front
    normalize: bool = False  # put a Normalizer (unit L2 norm) in front instead
    # (parameter, power): rows not of unit length (see unit_rows) get a Normalizer in front, and this
    # parameter's grid and default are multiplied by (REFERENCE_SPREAD / spread) ** power, where spread is
    # that of the normalised rows (see normalized_spread); rows of unit length go in as they are.
    # None: every row gets the same preprocessing and grid.
    spread_scaled: tuple[str, int] | None = None
    unit_default: Mapping[str, Any] | None = None  # rows of unit length start from this default instead
    calibrate: bool = False  # no predict_proba: wrap in PlattCalibrated
    platt_intercept_weight: float = 0.0  # PlattCalibrated's pull of the sigmoid's intercept toward margin 0
    balanced: Mapping[str, Any] | None = field(default_factory=lambda: {"class_weight": "balanced"})
    at_most_n: str | None = None  # integer parameter that may not exceed the training size
    epoch_budget: bool = False  # max_iter is a training budget: hitting it is not a convergence failure
    # scores every grid point of a fold from one fit: (template, points, X_train, y_train, X_val) -> margins
    grid_path: Callable[..., np.ndarray] | None = None
    # the grid is a regularisation path of a convex problem: each fold fits it in grid order, every
    # point warm-started from the previous one's solution (same optimum, fewer iterations)
    warm_path: bool = False
    # rank grid points on at most this many rows of each validation fold (for heads whose predictions
    # cost a pass over the training rows each, such as neighbour queries); None: every row
    max_val_rows: int | None = None
    # an L2-penalised linear model whose coefficients fold: fitted with the prompt prior when one is given
    # (pipeline.heads.prompts)
    prompted: bool = False

    def for_rows(self, unit: bool, spread: float = REFERENCE_SPREAD) -> HeadSpec:
        """This head as fitted on rows of unit length (``unit``; see :func:`unit_rows`) or on rows whose
        L2-normalised copies have spread ``spread`` (see :func:`normalized_spread`)."""
        if unit:
            return replace(self, default=self.unit_default) if self.unit_default else self
        if self.spread_scaled is None:
            return self
        key, power = self.spread_scaled
        factor = (REFERENCE_SPREAD / max(spread, 1e-6)) ** power
        rescale = lambda v: float(f"{v * factor:.3g}")  # noqa: E731  (3 significant digits: a readable manifest)
        return replace(self, normalize=True, grid={**self.grid, key: [rescale(v) for v in self.grid[key]]},
                       default={**self.default, key: rescale(self.default[key])})


def _early_stop(n: int | None) -> bool:
    return n is not None and n >= EARLY_STOP_N


def _nearest(X_train: np.ndarray, X_val: np.ndarray, k: int, block: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances and indices of each ``X_val`` row's ``k`` nearest ``X_train`` rows, nearest first.

    One matrix product per block of validation rows (``block`` distances at a time) and a partial sort:
    on float32 rows 2-3x faster than ``KNeighborsClassifier.kneighbors`` at k=1,000 among thousands of
    rows, with the same neighbours and distances up to float32 rounding.
    """
    sq_train = np.einsum("ij,ij->i", X_train, X_train)
    k, rows = min(k, len(X_train)), max(1, block // max(len(X_train), 1))
    dists, inds = [], []
    for start in range(0, len(X_val), rows):
        V = X_val[start: start + rows]
        sq = np.maximum(np.einsum("ij,ij->i", V, V)[:, None] - 2 * (V @ X_train.T) + sq_train, 0)
        part = np.argpartition(sq, k - 1, axis=1)[:, :k] if k < len(X_train) else np.tile(np.arange(k), (len(V), 1))
        near = np.take_along_axis(sq, part, axis=1)
        order = np.argsort(near, axis=1, kind="stable")
        dists.append(np.sqrt(np.take_along_axis(near, order, axis=1).astype(np.float64)))
        inds.append(np.take_along_axis(part, order, axis=1))
    return np.concatenate(dists), np.concatenate(inds)


def _knn_grid_path(template: BaseEstimator, points: list[dict[str, Any]], X_train: np.ndarray,
                   y_train: np.ndarray, X_val: np.ndarray) -> np.ndarray:
    """Margins of a distance-weighted k-NN (``template``: euclidean) for every ``n_neighbors`` in
    ``points`` from one neighbour query at the largest k (the nearest k of a query are the first k of
    its nearest max-k)."""
    ks = [p["n_neighbors"] for p in points]
    dist, ind = _nearest(X_train, X_val, max(ks))
    positive = y_train[ind] == 1
    margins = []
    for k in ks:
        d = dist[:, :k]
        exact = d == 0  # as scikit-learn does: exact matches, when a query has any, take all the weight
        with np.errstate(divide="ignore"):
            w = np.where(exact.any(axis=1, keepdims=True), exact, 1.0 / d)
        margins.append((w * positive[:, :k]).sum(axis=1) / w.sum(axis=1) - 0.5)
    return np.stack(margins)


def _nb_grid_path(template: BaseEstimator, points: list[dict[str, Any]], X_train: np.ndarray,
                  y_train: np.ndarray, X_val: np.ndarray) -> np.ndarray:
    """Margins of Gaussian naive Bayes for every ``var_smoothing`` in ``points`` from one fit: smoothing
    only adds ``var_smoothing`` times the largest feature variance to every class variance."""
    nb = clone(template).set_params(var_smoothing=0.0).fit(X_train, y_train)
    raw, largest = nb.var_.copy(), float(np.var(X_train, axis=0).max())
    margins = []
    for p in points:
        nb.var_ = raw + p["var_smoothing"] * largest
        margins.append(nb.predict_proba(X_val)[:, 1] - 0.5)
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
            {"C": [1.0, 3.0, 10.0, 30.0, 100.0]}, {"C": 1.0}, spread_scaled=("C", 1), warm_path=True, prompted=True,
        ),
        HeadSpec(
            "linear-svm", "linear SVM (squared hinge, by L-BFGS), Platt-calibrated",
            lambda seed, n: LinearSVM(),
            {"C": [0.03, 0.1, 0.3, 1.0]}, {"C": 0.1}, spread_scaled=("C", 1), calibrate=True, warm_path=True,
            prompted=True, platt_intercept_weight=INTERCEPT_WEIGHT,
        ),
        HeadSpec(
            "rbf-svm", "RBF-kernel SVM, Platt-calibrated",
            lambda seed, n: SVC(kernel="rbf", gamma="scale", random_state=seed),
            {"C": [1.0, 10.0]}, {"C": 1.0}, scale=True, calibrate=True,
        ),
        HeadSpec(
            "knn", "k nearest neighbours by cosine (euclidean on unit vectors), distance-weighted, Platt-calibrated",
            lambda seed, n: KNeighborsClassifier(weights="distance", algorithm="brute"),
            {"n_neighbors": [KNN_MAX_K, 95, 45, 15]}, {"n_neighbors": 45}, normalize=True, balanced=None,
            calibrate=True, platt_intercept_weight=INTERCEPT_WEIGHT,
            unit_default={"n_neighbors": KNN_MAX_K},
            at_most_n="n_neighbors", grid_path=_knn_grid_path, max_val_rows=1000,
        ),
        HeadSpec(
            "random-forest", "random forest of 100 trees",
            lambda seed, n: RandomForestClassifier(n_estimators=100, random_state=seed),
            {"min_samples_leaf": [5, 1]}, {"min_samples_leaf": 1},
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
            {"alpha": [1.0, 1e-2, 1e-4]}, {"alpha": 1e-2}, scale=True, balanced=None, epoch_budget=True,
        ),
        HeadSpec(
            "ridge", "ridge classifier, Platt-calibrated",
            lambda seed, n: RidgeClassifier(),
            # alpha = 4 / C for logreg's C of 1/3, 1, 3, 10: near margin 0 the logistic loss is
            # log 2 - y z / 2 + z² / 8, and ridge at alpha 4 / C solves that quadratic (same w up to scale)
            {"alpha": [12.0, 4.0, 1.3, 0.4]}, {"alpha": 4.0}, spread_scaled=("alpha", -1),
            calibrate=True, platt_intercept_weight=INTERCEPT_WEIGHT, grid_path=_ridge_grid_path, prompted=True,
        ),
        HeadSpec(
            "nb", "Gaussian naive Bayes",
            lambda seed, n: GaussianNB(),
            {"var_smoothing": [1e-1, 1e-2, 1e-5, 1e-9]}, {"var_smoothing": 1e-9},
            balanced={"priors": [0.5, 0.5]}, grid_path=_nb_grid_path,
        ),
        HeadSpec(
            "sgd", "logistic regression by averaged SGD; pipeline.heads.out_of_core.fit_sgd trains it out of core",
            lambda seed, n: make_sgd(seed),
            {"alpha": [1e-2, 1e-3, 1e-4, 1e-5]}, {"alpha": SGD_ALPHA}, scale=True,
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


def unit_rows(X: np.ndarray) -> bool:
    """Whether every row of ``X`` has unit L2 norm (to 1e-3), as sentence embeddings such as MiniLM's do.

    Linear heads take such rows as they are and L2-normalise other rows instead of standardising
    them: standardising gives each dimension unit variance, blowing up the near-constant ones (noise)
    to the weight of the informative ones.
    """
    X = np.asarray(X)
    return len(X) > 0 and bool(np.all(np.abs(np.einsum("ij,ij->i", X, X) - 1.0) < 2e-3))


def normalized_spread(X: np.ndarray) -> float:
    """The spread of ``X``'s rows once L2-normalised: their mean squared distance to their centroid.

    Scaling every row by ``k`` is the same as scaling logistic regression's ``C`` by ``k²`` (ridge's
    ``alpha`` by ``1/k²``), so a grid chosen on rows of one spread fits rows of another once rescaled:
    pooled GloVe rows, normalised, crowd around their mean (spread 0.17 on RT) and need about 5x the
    ``C`` that MiniLM's (0.79) do.
    """
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    U = X / np.where(norms == 0, 1.0, norms)
    return float(np.einsum("ij,ij->i", U, U).mean() - U.mean(axis=0) @ U.mean(axis=0))


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
    unit: bool = False,
) -> Pipeline:
    """An unfitted head: ``[StandardScaler | Normalizer] -> classifier`` with ``params`` (default: the
    head's defaults); margin classifiers are wrapped in :class:`~pipeline.heads.calibration.PlattCalibrated`.

    ``n_train`` (the training size) caps parameters such as ``n_neighbors`` that may not exceed it.
    ``unit=True`` builds it for training rows of unit length (no Normalizer, for heads with
    ``spread_scaled``); otherwise their defaults are those of rows of :data:`REFERENCE_SPREAD`.
    """
    check_class_weight(class_weight)
    return _build(get_head(name).for_rows(unit), params, class_weight, seed, n_train)


def _build(spec: HeadSpec, params: Mapping[str, Any] | None, class_weight: str | None, seed: int,
           n_train: int | None) -> Pipeline:
    clf = _classifier(spec, params, class_weight, seed, n_train)
    if spec.calibrate:
        clf = PlattCalibrated(clf, intercept_weight=spec.platt_intercept_weight)
    return Pipeline([*_preprocessing(spec), ("clf", clf)])


class _StratifiedGroupKFold(StratifiedGroupKFold):
    """scikit-learn's ``StratifiedGroupKFold``, making the same folds, with its choice of a fold for
    each group vectorised over the candidate folds (its per-fold loop took 80% of the 0.3 s that
    splitting a 10,000-row sample cost)."""

    def _find_best_fold(self, y_counts_per_fold: np.ndarray, y_cnt: np.ndarray, group_y_counts: np.ndarray) -> int:
        k = self.n_splits
        trial = np.repeat(y_counts_per_fold[None], k, axis=0)  # trial[i]: the folds with the group put in fold i
        trial[np.arange(k), np.arange(k)] += group_y_counts
        evals = np.std(trial / y_cnt.reshape(1, 1, -1), axis=1).mean(axis=1).tolist()
        sizes = y_counts_per_fold.sum(axis=1).tolist()
        best, low, smallest = 0, np.inf, np.inf
        # the parent's rule: the lowest spread, ties (np.isclose) to the smaller fold
        for i, (value, size) in enumerate(zip(evals, sizes)):
            close = np.isfinite(low) and abs(value - low) <= 1e-8 + 1e-5 * abs(low)
            if value < low or (close and size < smallest):
                best, low, smallest = i, value, size
        return best


@dataclass(frozen=True)
class FittedHead:
    """A fitted head and how it was chosen."""

    name: str
    estimator: Pipeline
    params: dict[str, Any]  # chosen grid point (classifier parameter names)
    search: str  # e.g. "StratifiedGroupKFold(5) x 3 over 4 points, one-SE rule", or why there was none
    cv_accuracy: float | None  # mean validation accuracy of the chosen point
    fit_seconds: float
    cv_sd: float | None = None  # sd of the chosen point's accuracy over all validation folds


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
        return _StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed), f"StratifiedGroupKFold({n_splits})"
    return StratifiedKFold(n_splits, shuffle=True, random_state=seed), f"StratifiedKFold({n_splits})"


@dataclass(frozen=True)
class Folds:
    """The validation folds of one training sample (``None`` when it is too small to split), and how made.

    ``splits`` holds ``repeats`` K-fold splits one after another; each row is validated once per repeat.
    """

    splits: list[tuple[np.ndarray, np.ndarray]] | None
    how: str
    repeats: int = 1


def plan_folds(y: np.ndarray, groups: Sequence[Any] | None, seed: int, selection: Selection = SELECTION) -> Folds:
    """The folds :func:`plan_cv`'s splitter makes for ``y`` and ``groups``, repeated with fresh shuffles
    as ``selection`` asks (repeat ``r`` shuffles with ``seed + 1000 r``), made once so that every head
    fitted on the same sample can share them (group-aware splitting of a large sample takes 0.1 s)."""
    y = np.asarray(y)
    groups = None if groups is None or any(g is None for g in groups) else list(groups)
    cv, how = plan_cv(y, groups, seed)
    if cv is None:
        return Folds(None, how)
    repeats = selection.repeats(len(y))
    rows = np.zeros((len(y), 1))
    groups = groups if isinstance(cv, StratifiedGroupKFold) else None  # too few: StratifiedKFold warns it ignores them
    splits = [s for r in range(repeats) for s in plan_cv(y, groups, seed + 1000 * r)[0].split(rows, y, groups)]
    return Folds(splits, f"{how} x {repeats}" if repeats > 1 else how, repeats)


@dataclass(frozen=True)
class FitOptions:
    """The options of :func:`fit_head` besides the head, the data and the selection rule: the rows' ``groups``
    (for group-aware folds), ``class_weight``, ``seed``, ``n_jobs`` processes for the folds, ``folds`` planned
    already (:func:`plan_folds`), and the prompt prior's ``prompt_direction``; one value that the functions
    fitting a head on someone else's behalf (routed heads, self-training's teacher) pass on whole."""

    groups: Sequence[Any] | None = None
    class_weight: str | None = None
    seed: int = 0
    n_jobs: int | None = None
    folds: Folds | None = None
    prompt_direction: np.ndarray | None = None


def fit_head(
    head: str | HeadSpec,
    X: np.ndarray,
    y: np.ndarray,
    options: FitOptions = FitOptions(),
    *,
    selection: Selection | None = SELECTION,
) -> FittedHead:
    """Fit ``head`` (a registered name, or a :class:`HeadSpec`) on vectors ``X`` and 0/1 labels ``y``,
    choosing its grid point by cross-validated accuracy as ``selection`` says.

    The folds are :func:`plan_folds` of ``y``, ``options.groups``, ``options.seed`` and ``selection`` (pass
    ``options.folds`` to reuse them across heads). Each fold fits its scaler once and every grid point on it; the
    chosen point is then refitted on all the data. Margin heads are Platt-calibrated on the chosen
    point's out-of-fold decision values from the first repeat of those folds, so calibration costs
    no extra fits. ``selection=None`` searches nothing: the fixed defaults. ``options.n_jobs`` runs the folds in
    parallel. ``options.prompt_direction`` (:func:`pipeline.heads.prompts.direction`) fits the linear heads with
    the prompt prior; ``options.class_weight`` weights the classes.
    """
    groups, class_weight, seed, folds = options.groups, options.class_weight, options.seed, options.folds
    prompt_direction = options.prompt_direction
    spec = head if isinstance(head, HeadSpec) else get_head(head)
    search, selection = selection is not None, selection or SELECTION
    check_class_weight(class_weight)
    X = check_array(X, dtype=np.float32, input_name="X")
    y = np.asarray(y)
    if y.shape != (len(X),):
        raise HeadError(f"y has shape {y.shape}; expected ({len(X)},), one 0/1 label per row of X.")
    counts = np.bincount(y.astype(np.int64), minlength=2) if y.size else np.zeros(2, int)
    if set(np.unique(y).tolist()) - {0, 1} or counts.min() < 2:
        raise HeadError(
            f"head {spec.name!r} needs labels 0/1 with at least 2 examples of each class; got counts "
            f"{ {int(k): int(v) for k, v in zip(*np.unique(y, return_counts=True))} }. Use a larger or balanced budget."
        )
    if folds is None:
        folds = plan_folds(y, groups, seed, selection if search else Selection(max_repeats=1)) \
            if search or spec.calibrate else Folds(None, "")
    elif folds.splits is not None and max(max(t.max(), v.max()) for t, v in folds.splits) >= len(y):
        raise HeadError(f"folds index rows beyond the {len(y)} of X; make them with plan_folds on this sample.")
    options = replace(options, folds=folds)
    with _fit_context(spec):
        fitted = _search_and_fit(spec, X, y, options, search, selection)
        if prompt_direction is None or not spec.prompted or prompts.agrees(fitted.estimator[-1], prompt_direction):
            return fitted
        plain = _search_and_fit(spec, X, y, replace(options, prompt_direction=None), search, selection)
        return replace(plain, fit_seconds=plain.fit_seconds + fitted.fit_seconds,
                       search=f"{plain.search}; prompt prior dropped: these labels run against the prompts")


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


def _search_and_fit(spec: HeadSpec, X: np.ndarray, y: np.ndarray, options: FitOptions, search: bool,
                    selection: Selection) -> FittedHead:
    """Search ``spec``'s grid on the planned ``options.folds`` as ``selection`` says; refit the chosen point on
    all rows."""
    start = time.perf_counter()
    folds, class_weight, seed = options.folds, options.class_weight, options.seed
    prompt_direction = options.prompt_direction
    splits, how, repeats = folds.splits, folds.how if search else "defaults (search off)", folds.repeats
    if splits is not None and not search:  # calibrating the defaults needs one K-fold split
        splits, repeats = splits[: len(splits) // repeats], 1
    rows, unit = "", unit_rows(X)
    if unit or spec.spread_scaled is None:
        spec = spec.for_rows(unit)
    else:
        rows_spread = normalized_spread(X)
        spec = spec.for_rows(False, rows_spread)
        rows = f"; rows L2-normalised (spread {rows_spread:.2f}; {spec.spread_scaled[0]} grid rescaled to it)"
    rows_as_given, fit_spec, gamma = X, spec, None
    if prompt_direction is not None and spec.prompted:
        # normalise, then stretch along the prompt direction; the fitted coefficients fold back below
        X = Normalizer().transform(X) if spec.normalize else X
        gamma = prompts.stretch_factor(X, prompt_direction, len(y))
        X, fit_spec = prompts.stretch(X, prompt_direction, gamma), replace(spec, normalize=False)
        rows += prompts.describe(gamma, len(y))
    params, score, spread, oof = dict(spec.default), None, None, None
    if splits is not None and (search or spec.calibrate):  # margin heads cross-validate the defaults to calibrate
        smallest_train = min(len(train) for train, _ in splits)
        cap = _capped(spec, smallest_train)
        grid = {k: list(dict.fromkeys(cap(k, v) for v in vals)) for k, vals in spec.grid.items()} if search \
            else {k: [v] for k, v in spec.default.items()}
        points = list(ParameterGrid(grid))
        default = {k: cap(k, v) for k, v in spec.default.items()}
        template = _classifier(spec, None, class_weight, seed, smallest_train)
        accuracy, decisions = _cross_validate(fit_spec, template, points, X, y, splits, repeats, options.n_jobs)
        chosen = choose_point(accuracy, len(splits) // repeats, selection.one_se,
                              default=points.index(default) if default in points else None,
                              keep_default_se=selection.keep_default_se)
        if search:
            # a capped point (k = the training folds' size) means every neighbour: the refit caps it at its own size
            params = {k: _plain(max(spec.grid[k]) if k == spec.at_most_n and v not in spec.grid[k] else v)
                      for k, v in points[chosen].items()}
            score, spread = float(accuracy[:, chosen].mean()), float(accuracy[:, chosen].std())
            how = f"{how} over {len(points)} points{_rule_text(selection)}"
        oof = decisions[chosen]
    estimator = _build(fit_spec, params, class_weight, seed, len(y))
    estimator.fit(X, y, **({"clf__oof_decision": oof} if spec.calibrate else {}))
    # a head whose predictions cost a pass over the training rows (knn) is checked on a sample of them
    checked = X if spec.max_val_rows is None else X[_at_most(np.arange(len(X)), spec.max_val_rows, seed)]
    if spec.calibrate and len(np.unique(estimator.predict(checked))) < 2:
        # the out-of-fold margins of a tiny sample's folds can rank the classes no better than chance:
        # Platt's sigmoid is then flat and the head predicts one class for everything (43% on RT's
        # test split). Calibrate on the training margins instead.
        estimator.fit(X, y, clf__oof_decision=estimator.decision_function(X))
    if gamma is not None:
        prompts.fold(estimator.named_steps["clf"], prompt_direction, gamma)
        if spec.normalize:  # the fitted classifier behind the Normalizer it was fitted behind
            estimator = Pipeline([("normalize", Normalizer().fit(rows_as_given)), ("clf", estimator.named_steps["clf"])])
    return FittedHead(spec.name, estimator, params, how + rows, score, time.perf_counter() - start, spread)


def _capped(spec: HeadSpec, n_train: int) -> Callable[[str, Any], Any]:
    """``(parameter, value) -> value``, capping the head's ``at_most_n`` parameter at ``n_train``."""
    return lambda k, v: min(v, n_train) if k == spec.at_most_n else v


def _rule_text(selection: Selection) -> str:
    """How ``selection`` picks, for the search description in ``fit``'s table and the manifest."""
    parts = [f"default kept unless beaten by {selection.keep_default_se:g} SE"] if selection.keep_default_se else []
    parts += [f"one-SE rule ({selection.one_se:g} SE)"] if selection.one_se else []
    return ", " + ", else ".join(parts) if parts else ""


def choose_point(accuracy: np.ndarray, k: int, one_se: float, default: int | None = None,
                 keep_default_se: float = 0.0) -> int:
    """Index of the grid point to use, from validation ``accuracy`` of shape (folds, points) whose
    folds come from K-fold splits of ``k`` folds. The point ``default`` when its mean is within
    ``keep_default_se`` standard errors of the best mean; otherwise the first point within ``one_se``
    standard errors of it (the first best when ``one_se`` is 0, as ``GridSearchCV`` picks).
    """
    mean = accuracy.mean(axis=0)
    best = int(np.argmax(mean))
    if len(accuracy) < 2:
        return best
    se = accuracy[:, best].std(ddof=1) / np.sqrt(k)
    if default is not None and keep_default_se and mean[default] >= mean[best] - keep_default_se * se - 1e-12:
        return default
    if not one_se:
        return best
    return int(np.flatnonzero(mean >= mean[best] - one_se * se - 1e-12)[0])


def _cross_validate(
    spec: HeadSpec, template: BaseEstimator, points: list[dict[str, Any]], X: np.ndarray, y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]], repeats: int, n_jobs: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validation accuracy of each grid point on each of ``splits``, shape ``(len(splits), len(points))``,
    and each point's out-of-fold margins from the first of the ``repeats`` K-fold splits (decision
    values, or P(positive) - 0.5), shape ``(len(points), len(y))``. A head with ``max_val_rows`` is
    validated on a seeded sample of that many rows of each larger fold (its other margins are NaN)."""
    from joblib import Parallel, delayed

    if spec.max_val_rows is not None:
        splits = [(train, _at_most(val, spec.max_val_rows, seed=i)) for i, (train, val) in enumerate(splits)]
    per_fold = Parallel(n_jobs=n_jobs)(
        delayed(_fold_margins)(spec, template, points, X[train], y[train], X[val]) for train, val in splits
    )
    margins = np.full((len(points), len(y)), np.nan)
    accuracy = np.empty((len(splits), len(points)))
    first = len(splits) // repeats
    for i, ((_, val), fold) in enumerate(zip(splits, per_fold)):
        if i < first:
            margins[:, val] = fold
        accuracy[i] = ((fold > 0) == y[val]).mean(axis=1)
    return accuracy, margins


def _at_most(rows: np.ndarray, most: int, seed: int) -> np.ndarray:
    """``rows``, or a seeded sample of ``most`` of them (in order) when there are more."""
    if len(rows) <= most:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, most, replace=False))


def _fold_margins(spec: HeadSpec, template: BaseEstimator, points: list[dict[str, Any]], X_train: np.ndarray,
                  y_train: np.ndarray, X_val: np.ndarray) -> np.ndarray:
    """Validation margins of every grid point fitted on one fold, preprocessing fitted once."""
    steps = _preprocessing(spec)
    if steps:
        prep = steps[0][1].fit(X_train)
        X_train, X_val = prep.transform(X_train), prep.transform(X_val)
    if spec.grid_path is not None:
        return spec.grid_path(template, points, X_train, y_train, X_val)
    if spec.warm_path:
        clf = clone(template).set_params(warm_start=True)
        return np.stack([margins(clf.set_params(**p).fit(X_train, y_train), X_val) for p in points])
    return np.stack([margins(clone(template).set_params(**p).fit(X_train, y_train), X_val) for p in points])


def _plain(value: Any) -> Any:
    """Numpy scalars from the grid as plain Python values, for JSON."""
    return value.item() if isinstance(value, np.generic) else value
