"""Active learning over cached vectors: which unlabelled texts to label next, and why.

Strategies (each picks ``k`` texts per round from the rows not yet labelled):

- ``random``: a uniform draw. (``compare --query random`` uses today's balanced budgets instead,
  which peek at the labels to balance the classes: a stronger baseline than any real draw.)
- ``margin``: the texts the current model is least sure of (P(positive) nearest 0.5).
- ``diverse``: k-means++ seeding on unit-length vectors, weighted by typicality: each pick is drawn
  with probability proportional to its squared cosine distance to the nearest text already labelled
  or picked, times its density (mean cosine similarity to its 20 nearest texts) to a power, so
  picks spread over the corpus without chasing outliers. With no labels this is the cold start
  (or ``typiclust``: the most typical text of each of k k-means clusters).
- ``hybrid``: diverse among the uncertain (Zhdanov 2019): the ``hybrid_pool * k`` least certain texts
  are clustered into ``k`` by k-means weighted by uncertainty, and the text nearest each centre is
  picked, so one batch does not spend its labels on near-copies.
- ``typical-margin``: ``diverse``'s draws, each weight also times the uncertainty (1 - |2p - 1|) to a
  power, and each draw among the texts predicted to be of the class with fewer labels so far, so the
  labels stay balanced as the balanced random baseline's are.

The knobs (typicality power, hybrid pool, uncertainty power and ramp, class balance, cold start) are
a :class:`QuerySettings`; the defaults were chosen on a validation split of RT's pool.

The current model is a head with its default parameters (no search: it refits in milliseconds)
fitted on the labelled rows; ``margin``, ``hybrid`` and ``typical-margin`` fall back to ``diverse`` until both classes
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
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.active.choices import STRATEGIES
from pipeline.intervals import wilson_interval

DENSITY_NEIGHBOURS = 20  # diverse: typicality = mean cosine similarity to this many nearest texts
DENSITY_REFERENCE = 20_000  # ... among at most this many (a seeded sample of larger pools)
QUERY_HEAD = "logreg"
COLD_STARTS = ("diverse", "typiclust")


@dataclass(frozen=True)
class QuerySettings:
    """The strategies' knobs. The defaults were chosen on a validation split carved out of RT's pool
    (whole movies; the test split never looked at): see ``benchmarks/tune_active.py`` and the README."""

    typical_power: float = 8.0  # diverse, typical-margin: draws ∝ distance² × density^typical_power
    hybrid_pool: int = 10  # hybrid: uncertain candidates per text picked
    uncertainty_power: float = 1.0  # typical-margin: ... × (1 - |2p - 1|)^uncertainty_power
    ramp: int = 128  # typical-margin: the uncertainty power grows linearly to full over this many labels (0: at once)
    balance: bool = True  # typical-margin: each pick from the class predicted for fewer labels so far
    cold: str = "diverse"  # the cold start from zero labels: diverse, or typiclust (Hacohen et al. 2022)
    cold_size: int = 0  # compare --query: texts in the cold start (0: one batch)

    def __post_init__(self) -> None:
        if self.cold not in COLD_STARTS:
            raise OptionError(f"unknown cold start {self.cold!r}; choose one of {', '.join(COLD_STARTS)}.")


SETTINGS = QuerySettings()
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


def typicality(U: np.ndarray, power: float = SETTINGS.typical_power) -> np.ndarray:
    """The weight ``diverse`` gives each row: :func:`density` to the ``power``, so draws favour texts
    like many others over outliers (one-off phrasings, foreign-language snippets)."""
    return np.clip(density(U), 1e-3, None) ** power


def diverse(U: np.ndarray, candidates: np.ndarray, k: int, rng: np.random.Generator, distance: np.ndarray,
            weight: np.ndarray | None = None, classes: np.ndarray | None = None,
            counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding: ``k`` rows of ``candidates``, each drawn with probability proportional to its
    squared distance to the nearest row labelled or already drawn (``distance``: that distance for
    every row of ``U`` before drawing), times ``weight`` (one per candidate; None: 1). With ``classes``
    (a predicted 0/1 class per candidate) each draw is among the class with fewer texts so far
    (``counts`` of labels per class, plus the draws), so batches keep the labels balanced.
    Returns the rows and their distances when drawn."""
    d = distance[candidates].astype(np.float64)
    Uc = U[candidates]
    w = np.ones(len(candidates)) if weight is None else np.asarray(weight, dtype=np.float64)
    tally = np.zeros(2) if counts is None else np.asarray(counts, dtype=np.float64).copy()
    chosen, at = [], []
    for _ in range(min(k, len(candidates))):
        weight = d ** 2 * w
        if chosen:
            weight[np.asarray(chosen)] = 0.0
        if classes is not None and (weight * (classes == np.argmin(tally))).sum() > 0:
            weight = weight * (classes == np.argmin(tally))
        total = weight.sum()
        if total > 0:
            i = int(rng.choice(len(d), p=weight / total))
        else:  # every candidate left coincides with a labelled text: draw uniformly
            i = int(rng.choice(np.setdiff1d(np.arange(len(d)), chosen)))
        chosen.append(i)
        at.append(float(d[i]))
        if classes is not None:
            tally[classes[i]] += 1
        np.minimum(d, 1.0 - Uc @ Uc[i], out=d)
    return candidates[np.asarray(chosen, dtype=np.int64)], np.asarray(at)


def typical_per_cluster(U: np.ndarray, k: int, rng: np.random.Generator, weight: np.ndarray | None = None,
                        typical: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means of the rows ``U`` into ``k`` clusters: the row nearest each centre (Zhdanov 2019,
    diverse mini-batch active learning), or with ``typical`` (a weight per row) the most typical row of
    each cluster (TypiClust, Hacohen et al. 2022); and the cluster sizes."""
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
            best = np.argmax(typical[members]) if typical is not None else \
                np.argmin(((U[members] - km.cluster_centers_[c]) ** 2).sum(axis=1))
            rows.append(int(members[best]))
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
    from pipeline.heads.registry import build_head

    if len(np.unique(y)) < 2:
        return None
    with _one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter on tiny samples; heads without class weights
        return build_head(head, class_weight="balanced", seed=seed, n_train=len(y)).fit(X[labelled], y)


@dataclass(frozen=True)
class _Round:
    """What every strategy of one round sees: the vectors, the unlabelled candidates, the labels so far
    and the current model's P(positive) of each candidate (None before both classes have a label)."""

    X: np.ndarray
    U: np.ndarray
    candidates: np.ndarray
    labelled: np.ndarray
    y: np.ndarray
    p: np.ndarray | None
    k: int
    rng: np.random.Generator
    distance: np.ndarray
    typical: np.ndarray
    settings: QuerySettings

    def suggest(self, rows: np.ndarray, reasons: Sequence[str]) -> list[Suggestion]:
        proba = {} if self.p is None else dict(zip(self.candidates.tolist(), self.p.tolist()))
        return [Suggestion(int(i), proba.get(int(i)), r) for i, r in zip(rows, reasons)]


def _random(r: _Round) -> list[Suggestion]:
    rows = r.rng.choice(r.candidates, size=r.k, replace=False)
    return r.suggest(rows, [f"random draw among {len(r.candidates):,} unlabelled texts"] * r.k)


def _margin(r: _Round) -> list[Suggestion]:
    order = np.argsort(np.abs(r.p - 0.5), kind="stable")[: r.k]
    return r.suggest(r.candidates[order], [
        f"uncertain: P(positive) {r.p[i]:.2f}, rank {rank + 1} of {len(r.candidates):,} by margin"
        for rank, i in enumerate(order)])


def _hybrid(r: _Round) -> list[Suggestion]:
    top = np.argsort(np.abs(r.p - 0.5), kind="stable")[: r.settings.hybrid_pool * r.k]
    rows, sizes = typical_per_cluster(r.U[r.candidates[top]], r.k, r.rng, weight=1.0 - 2.0 * np.abs(r.p[top] - 0.5))
    return r.suggest(r.candidates[top[rows]], [
        f"uncertain and typical: P(positive) {r.p[top[i]]:.2f}, nearest the centre of a cluster of {n} among the "
        f"{len(top)} least certain" for i, n in zip(rows, sizes)])


def _typical_margin(r: _Round) -> list[Suggestion]:
    s = r.settings
    ramp = 1.0 if s.ramp <= 0 else min(1.0, len(r.labelled) / s.ramp)
    weight = r.typical[r.candidates] * (1.0 - np.abs(2.0 * r.p - 1.0)) ** (s.uncertainty_power * ramp)
    predicted = (r.p >= 0.5).astype(np.int64) if s.balance else None
    rows, at = diverse(r.U, r.candidates, r.k, r.rng, r.distance, weight, classes=predicted,
                       counts=np.bincount(r.y, minlength=2))
    return r.suggest(rows, [
        f"uncertain, typical and spread: P(positive) {r.p[np.searchsorted(r.candidates, i)]:.2f}, cosine distance "
        f"{d:.2f} to the nearest labelled or picked text" for i, d in zip(rows, at)])


def _typiclust(r: _Round) -> list[Suggestion]:
    rows, sizes = typical_per_cluster(r.U[r.candidates], r.k, r.rng, typical=r.typical[r.candidates])
    return r.suggest(r.candidates[rows], [
        f"cold start, no labels yet: the most typical text of a cluster of {n} (k-means into {r.k})" for n in sizes])


def _diverse(r: _Round, strategy: str) -> list[Suggestion]:
    n_lab = len(r.labelled)
    if n_lab == 0 and r.settings.cold == "typiclust":
        return _typiclust(r)
    rows, at = diverse(r.U, r.candidates, r.k, r.rng, r.distance, r.typical[r.candidates])
    why = "cold start, no labels yet" if n_lab == 0 else ("one class labelled so far" if strategy != "diverse" else "")
    prefix = f"diverse ({why}): " if why else "diverse: "
    return r.suggest(rows, [
        f"{prefix}first pick, at random" if n_lab == 0 and j == 0 else
        f"{prefix}cosine distance {d:.2f} to the nearest labelled or picked text" for j, d in enumerate(at)])


_NEEDS_MODEL = {"margin": _margin, "hybrid": _hybrid, "typical-margin": _typical_margin}


@dataclass(frozen=True)
class Known:
    """What a caller of :func:`propose` already has, to save recomputing it: ``U`` (unit rows of ``X``),
    ``model`` (the fitted current model), ``distance`` (:func:`nearest_distance` of every row to the labelled
    ones) and ``typical`` (:func:`typicality`). ``guess=False`` skips fitting the current model for strategies
    that do not use it (``random``, ``diverse``): their suggestions then carry no P(positive)."""

    U: np.ndarray | None = None
    model: Any = None
    distance: np.ndarray | None = None
    typical: np.ndarray | None = None
    guess: bool = True


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
    settings: QuerySettings | None = None,
    known: Known = Known(),
) -> list[Suggestion]:
    """The ``k`` rows of ``X`` to label next by ``strategy``, given the rows ``labelled`` so far and their
    0/1 labels ``y`` (the only labels a strategy ever sees). ``exclude`` rows are never proposed (e.g.
    skipped, or open in another tab). ``known``: what the caller has computed already (:class:`Known`);
    ``settings``: the strategies' knobs (default :data:`SETTINGS`)."""
    U, model, distance, typical = known.U, known.model, known.distance, known.typical
    check_strategy(strategy)
    settings = settings or SETTINGS
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
    if model is None and (known.guess or strategy in _NEEDS_MODEL):
        model = query_model(X, labelled, y, head=head)
    U = unit_rows(X) if U is None else U
    r = _Round(X, U, candidates, labelled, y, None if model is None else model.predict_proba(X[candidates])[:, 1],
               k, rng, nearest_distance(U, labelled) if distance is None else distance,
               typicality(U, settings.typical_power) if typical is None else typical, settings)
    if strategy == "random":
        return _random(r)
    if strategy in _NEEDS_MODEL and r.p is not None:
        return _NEEDS_MODEL[strategy](r)
    return _diverse(r, strategy)


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
    settings: QuerySettings | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Replay ``strategy`` on the pool ``X``: yield ``(budget, rows, labels)`` as the labelled set reaches
    each budget (ascending). The cold start (the first ``min(settings.cold_size or k, budgets[0])`` rows,
    chosen from zero labels as ``settings.cold`` says) depends on ``seed`` alone, so every strategy of a
    seed starts from the same rows; later rounds query ``k`` rows each (fewer to land exactly on a
    budget). ``typical``: :func:`typicality` of ``X``'s unit rows, when already computed; ``settings``:
    the strategies' knobs."""
    check_strategy(strategy)
    budgets = sorted(set(budgets))
    if budgets[-1] > len(oracle):
        raise OptionError(f"budget {budgets[-1]} exceeds the {len(oracle)} texts of the pool.")
    settings = settings or SETTINGS
    U = unit_rows(X)
    typical = typicality(U, settings.typical_power) if typical is None else typical
    cold = propose("diverse", X, [], [], min(settings.cold_size or k, budgets[0]), rng=np.random.default_rng(seed),
                   settings=settings, known=Known(U=U, typical=typical))
    oracle.query([s.index for s in cold])
    distance = nearest_distance(U, oracle.labelled)
    rng = np.random.default_rng([seed, 1])
    for budget in budgets:
        while len(oracle.labelled) < budget:
            step = min(k, budget - len(oracle.labelled))
            picks = [s.index for s in propose(strategy, X, oracle.labelled, oracle.labels, step, rng=rng, head=head,
                                              settings=settings,
                                              known=Known(U=U, distance=distance, typical=typical, guess=False))]
            oracle.query(picks)
            np.minimum(distance, nearest_distance(U, picks), out=distance)
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
    low, high = wilson_interval(correct, len(y))
    return Estimate(len(y), correct / len(y), max(0.0, low), min(1.0, high), folds)
