"""Active learning over cached vectors: which unlabelled texts to label next, and why.

Strategies (each picks ``k`` texts per round from the rows not yet labelled):

- ``random``: a uniform draw. (``compare --query random`` uses today's balanced budgets instead,
  which peek at the labels to balance the classes: a stronger baseline than any real draw.)
- ``margin``: the texts the current model is least sure of (P(positive) nearest 0.5).
- ``diverse``: k-means++ seeding on unit-length vectors, weighted by typicality: each pick is drawn
  with probability proportional to its squared cosine distance to the nearest text already labelled
  or picked, times its density (mean cosine similarity to its 20 nearest texts) to the 4th power, so
  picks spread over the corpus without chasing outliers. With no labels this is the cold start.
- ``hybrid``: diverse among the uncertain (Zhdanov 2019): the ``HYBRID_POOL * k`` least certain texts
  are clustered into ``k`` by k-means weighted by uncertainty, and the text nearest each centre is
  picked, so one batch does not spend its labels on near-copies.

The current model is a head with its default parameters (no search: it refits in milliseconds)
fitted on the labelled rows; ``margin`` and ``hybrid`` fall back to ``diverse`` until both classes
have a label. :func:`simulate` replays a strategy on a labelled pool through an :class:`Oracle` that
reveals a label only once its text is queried.

Written here rather than with small-text (1.4.1): its strategies expect its own classifier and
dataset wrappers, and importing it loads torch, transformers and sentence-transformers (12 s here),
which ``suggest`` and ``label`` must not pay; each strategy below is a few lines of numpy.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline import OptionError

STRATEGIES = {
    "random": "a uniform random draw",
    "margin": "the least certain texts (P(positive) nearest 0.5)",
    "diverse": "k-means++ seeding weighted by typicality: far from every text labelled or picked, like many others",
    "hybrid": "diverse among the uncertain: k-means over the 10 x k least certain, the text nearest each centre",
}
HYBRID_POOL = 10  # hybrid: uncertain candidates per text picked
DENSITY_NEIGHBOURS = 20  # diverse: typicality = mean cosine similarity to this many nearest texts
DENSITY_REFERENCE = 20_000  # ... among at most this many (a seeded sample of larger pools)
TYPICAL_POWER = 4  # diverse draws with probability ∝ distance² × typicality⁴
QUERY_HEAD = "logreg"
_BLOCK = 4096  # rows per block when computing distances to the labelled texts


@dataclass(frozen=True)
class Suggestion:
    """One text to label: its row, the current model's P(positive) (None before both classes have a
    label) and why it was chosen."""

    index: int
    p_positive: float | None
    reason: str


def check_strategy(name: str) -> str:
    """``name`` if it is a known strategy; otherwise an OptionError listing them."""
    if name not in STRATEGIES:
        choices = "; ".join(f"{n} ({d})" for n, d in STRATEGIES.items())
        raise OptionError(f"unknown strategy {name!r}; choose one of: {choices}.")
    return name


def unit_rows(X: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length (zero rows stay zero)."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms == 0, 1.0, norms)


def nearest_distance(U: np.ndarray, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """Cosine distance of every row of unit vectors ``U`` to its nearest row among ``rows`` (1.0 when none)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.ones(len(U), dtype=np.float32)
    if len(rows) == 0:
        return out
    for start in range(0, len(rows), _BLOCK):
        sims = U @ U[rows[start:start + _BLOCK]].T
        np.minimum(out, 1.0 - sims.max(axis=1), out=out)
    return np.clip(out, 0.0, 2.0)


def density(U: np.ndarray, neighbours: int = DENSITY_NEIGHBOURS, seed: int = 0) -> np.ndarray:
    """Typicality of each unit row: its mean cosine similarity to its ``neighbours`` nearest other rows
    (among a seeded sample of ``DENSITY_REFERENCE`` rows when there are more)."""
    rows = np.arange(len(U))
    if len(U) > DENSITY_REFERENCE:
        rows = np.sort(np.random.default_rng(seed).choice(len(U), DENSITY_REFERENCE, replace=False))
    ref = U[rows]
    k = min(neighbours, len(rows) - 1)
    out = np.zeros(len(U), dtype=np.float32)
    if k < 1:
        return out + 1.0
    for start in range(0, len(U), 1024):
        sims = U[start:start + 1024] @ ref.T
        out[start:start + 1024] = np.sort(sims, axis=1)[:, -k - 1:-1].mean(axis=1)  # the largest is itself
    return out


def typicality(U: np.ndarray) -> np.ndarray:
    """The weight ``diverse`` gives each row: :func:`density` to the power ``TYPICAL_POWER``, so draws
    favour texts like many others over outliers (one-off phrasings, foreign-language snippets)."""
    return np.clip(density(U), 1e-3, None) ** TYPICAL_POWER


def diverse(U: np.ndarray, candidates: np.ndarray, k: int, rng: np.random.Generator,
            distance: np.ndarray, typical: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding: ``k`` rows of ``candidates``, each drawn with probability proportional to its
    squared distance to the nearest row labelled or already drawn (``distance``: that distance for
    every row of ``U`` before drawing), times ``typical`` (a weight per row of ``U``; None: 1).
    Returns the rows and their distances when drawn."""
    d = distance[candidates].astype(np.float64)
    Uc = U[candidates]
    w = np.ones(len(candidates)) if typical is None else typical[candidates].astype(np.float64)
    chosen, at = [], []
    for _ in range(min(k, len(candidates))):
        weight = d ** 2 * w
        if chosen:
            weight[np.asarray(chosen)] = 0.0
        total = weight.sum()
        if total > 0:
            i = int(rng.choice(len(d), p=weight / total))
        else:  # every candidate left coincides with a labelled text: draw uniformly
            i = int(rng.choice(np.setdiff1d(np.arange(len(d)), chosen)))
        chosen.append(i)
        at.append(float(d[i]))
        np.minimum(d, 1.0 - Uc @ Uc[i], out=d)
    return candidates[np.asarray(chosen, dtype=np.int64)], np.asarray(at)


def typical_per_cluster(U: np.ndarray, k: int, rng: np.random.Generator,
                        weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means of the rows ``U`` into ``k`` clusters: the row nearest each centre, and the
    cluster sizes (Zhdanov 2019, diverse mini-batch active learning)."""
    from sklearn.cluster import KMeans

    k = min(k, len(U))
    weight = None if weight is None else np.clip(weight, 1e-3, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct points than clusters
        km = KMeans(k, n_init=1, random_state=int(rng.integers(2**31 - 1))).fit(U, sample_weight=weight)
    rows, sizes = [], []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            rows.append(int(members[np.argmin(((U[members] - km.cluster_centers_[c]) ** 2).sum(axis=1))]))
            sizes.append(len(members))
    return np.asarray(rows, dtype=np.int64), np.asarray(sizes)


@functools.cache
def _controller():
    """One threadpoolctl controller (finding the BLAS/OpenMP libraries costs ~7 ms; a refit, less)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_thread():
    """Fit single-threaded: BLAS threads spin on busy cores and these fits are small."""
    return _controller().limit(limits=1)


def query_model(X: np.ndarray, labelled: np.ndarray, y: np.ndarray, seed: int = 0, head: str = QUERY_HEAD):
    """``head`` with its default parameters and balanced class weights fitted on the labelled rows, or None
    until both classes have a label."""
    from pipeline.heads import build_head

    if len(np.unique(y)) < 2:
        return None
    with _one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter on tiny samples; heads without class weights
        return build_head(head, class_weight="balanced", seed=seed, n_train=len(y)).fit(X[labelled], y)


def propose(
    strategy: str,
    X: np.ndarray,
    labelled: Sequence[int] | np.ndarray,
    y: Sequence[int] | np.ndarray,
    k: int,
    *,
    rng: np.random.Generator,
    exclude: Sequence[int] | np.ndarray = (),
    head: str = QUERY_HEAD,
    U: np.ndarray | None = None,
    model=None,
    distance: np.ndarray | None = None,
    typical: np.ndarray | None = None,
) -> list[Suggestion]:
    """The ``k`` rows of ``X`` to label next by ``strategy``, given the rows ``labelled`` so far and their
    0/1 labels ``y`` (the only labels a strategy ever sees). ``exclude`` rows are never proposed (e.g.
    skipped, or open in another tab). ``U`` (unit rows of ``X``), ``model`` (the fitted current model)
    ``distance`` (:func:`nearest_distance` of every row to the labelled ones) and ``typical``
    (:func:`typicality`) may be passed to save recomputing them."""
    check_strategy(strategy)
    labelled = np.asarray(labelled, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    if len(labelled) != len(y):
        raise ValueError(f"{len(labelled)} labelled rows but {len(y)} labels; give one label per labelled row.")
    free = np.ones(len(X), dtype=bool)
    free[labelled] = False
    free[np.asarray(exclude, dtype=np.int64)] = False
    candidates = np.flatnonzero(free)
    k = min(k, len(candidates))
    if k <= 0:
        return []
    model = model if model is not None else query_model(X, labelled, y, head=head)
    p = None if model is None else model.predict_proba(X[candidates])[:, 1]
    proba = dict.fromkeys(candidates.tolist()) if p is None else dict(zip(candidates.tolist(), p.tolist()))
    n_lab = len(labelled)

    def suggestions(rows: np.ndarray, reasons: list[str]) -> list[Suggestion]:
        return [Suggestion(int(i), proba[int(i)], r) for i, r in zip(rows, reasons)]

    if strategy == "random":
        rows = rng.choice(candidates, size=k, replace=False)
        return suggestions(rows, [f"random draw among {len(candidates):,} unlabelled texts"] * k)
    if strategy in ("margin", "hybrid") and p is not None:
        if strategy == "margin":
            order = np.argsort(np.abs(p - 0.5), kind="stable")[:k]
            return suggestions(candidates[order], [
                f"uncertain: P(positive) {p[i]:.2f}, rank {r + 1} of {len(candidates):,} by margin"
                for r, i in enumerate(order)])
        U = unit_rows(X) if U is None else U
        top = np.argsort(np.abs(p - 0.5), kind="stable")[: HYBRID_POOL * k]
        rows, sizes = typical_per_cluster(U[candidates[top]], k, rng, weight=1.0 - 2.0 * np.abs(p[top] - 0.5))
        return suggestions(candidates[top[rows]], [
            f"uncertain and typical: P(positive) {p[top[r]]:.2f}, nearest the centre of a cluster of {n} among the "
            f"{len(top)} least certain" for r, n in zip(rows, sizes)])
    U = unit_rows(X) if U is None else U
    typical = typicality(U) if typical is None else typical
    rows, at = diverse(U, candidates, k, rng, nearest_distance(U, labelled) if distance is None else distance, typical)
    why = "cold start, no labels yet" if n_lab == 0 else (
        "one class labelled so far" if strategy in ("margin", "hybrid") else "")
    prefix = f"diverse ({why}): " if why else "diverse: "
    return suggestions(rows, [
        f"{prefix}first pick, at random" if n_lab == 0 and j == 0 else
        f"{prefix}cosine distance {d:.2f} to the nearest labelled or picked text" for j, d in enumerate(at)])


# ---------------------------------------------------------------------------------------------- simulation
class Oracle:
    """The labels of a pool, revealed only for the rows queried (simulated active learning).

    Strategies see :attr:`labelled` and :attr:`labels` (those rows' labels, in query order) and nothing
    else; the hidden labels live in a closure, not an attribute, so no code reads them by accident.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray):
        hidden = np.asarray(labels, dtype=np.int64).copy()
        self._reveal = lambda rows: hidden[rows]
        self._size = len(hidden)
        self._rows: list[int] = []
        self._labels: list[int] = []

    def __len__(self) -> int:
        return self._size

    def query(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Reveal (and record) the labels of ``rows``; a row already queried is refused."""
        rows = np.asarray(rows, dtype=np.int64)
        seen = set(self._rows)
        if len(set(rows.tolist())) != len(rows) or seen & set(rows.tolist()):
            raise ValueError("a row was queried twice; strategies must propose unlabelled rows only.")
        values = self._reveal(rows)
        self._rows += rows.tolist()
        self._labels += values.tolist()
        return values

    @property
    def labelled(self) -> np.ndarray:
        """Rows queried so far, in query order."""
        return np.asarray(self._rows, dtype=np.int64)

    @property
    def labels(self) -> np.ndarray:
        """Labels of :attr:`labelled`, in the same order."""
        return np.asarray(self._labels, dtype=np.int64)


def simulate(
    strategy: str,
    X: np.ndarray,
    oracle: Oracle,
    budgets: Sequence[int],
    *,
    k: int,
    seed: int,
    head: str = QUERY_HEAD,
    typical: np.ndarray | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Replay ``strategy`` on the pool ``X``: yield ``(budget, rows, labels)`` as the labelled set reaches
    each budget (ascending). The cold start (the first ``min(k, budgets[0])`` rows, drawn by ``diverse``
    from zero labels) depends on ``seed`` alone, so every strategy of a seed starts from the same rows;
    later rounds query ``k`` rows each (fewer to land exactly on a budget). ``typical``: :func:`typicality`
    of ``X``'s unit rows, when already computed."""
    check_strategy(strategy)
    budgets = sorted(set(budgets))
    if budgets[-1] > len(oracle):
        raise OptionError(f"budget {budgets[-1]} exceeds the {len(oracle)} texts of the pool.")
    U = unit_rows(X)
    typical = typicality(U) if typical is None else typical
    cold = propose("diverse", X, [], [], min(k, budgets[0]), rng=np.random.default_rng(seed), U=U, typical=typical)
    oracle.query([s.index for s in cold])
    rng = np.random.default_rng([seed, 1])
    for budget in budgets:
        while len(oracle.labelled) < budget:
            step = min(k, budget - len(oracle.labelled))
            picks = propose(strategy, X, oracle.labelled, oracle.labels, step, rng=rng, head=head, U=U, typical=typical)
            oracle.query([s.index for s in picks])
        yield budget, oracle.labelled, oracle.labels


@dataclass(frozen=True)
class Estimate:
    """Cross-validated accuracy of the current model on the labels so far, with a 95% Wilson interval."""

    n: int
    accuracy: float
    low: float
    high: float
    folds: int


def cv_estimate(X: np.ndarray, y: np.ndarray, seed: int = 0, head: str = QUERY_HEAD, max_folds: int = 5) -> Estimate | None:
    """Out-of-fold accuracy of ``head`` (defaults, balanced class weights) on ``X, y`` by stratified k-fold
    (up to ``max_folds``; None below 2 labels of each class), with a Wilson interval over the ``len(y)``
    out-of-fold predictions."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=np.int64)
    folds = min(max_folds, int(np.bincount(y, minlength=2).min()))
    if folds < 2:
        return None
    correct = 0
    for train, val in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        model = query_model(X, train, y[train], seed=seed, head=head)
        correct += int(((model.predict_proba(X[val])[:, 1] >= 0.5) == y[val]).sum())
    n, z = len(y), 1.96
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Estimate(n, p, max(0.0, centre - half), min(1.0, centre + half), folds)
