"""Stage two for pools whose vectors do not fit in memory: a linear head trained chunk by chunk.

:func:`fit_sgd` trains ``StandardScaler`` + ``SGDClassifier(loss="log_loss")`` (logistic regression
by stochastic gradient descent) with ``partial_fit`` over chunks of cached vectors: one pass to fit
the scaler, then at most ``epochs`` passes, each over the chunks in a new seeded order with the rows of each
chunk shuffled, stopping as ``SGDClassifier.fit`` does once the loss stops falling (each chunk's loss is
taken before it is learnt, so this costs no extra pass); ``n_iter_`` says how many passes ran. Memory holds one chunk (``chunk_rows`` x dim floats) plus the key index. Chunks are
contiguous runs of the cache files, so every epoch reads the vectors sequentially once.
The result is an ordinary fitted :class:`~sklearn.pipeline.Pipeline` (``predict_proba``, skops-safe).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.store.cache import Store, text_keys

CHUNK_ROWS = 65_536  # 96 MB of 384-d float32 vectors per chunk
EPOCHS = 200  # most passes; training stops earlier when the loss stops falling (TOL, PATIENCE)
TOL, PATIENCE = 1e-3, 5  # as SGDClassifier.fit: stop after PATIENCE passes without a TOL-per-row better loss
ALPHA = 1e-4


@dataclass(frozen=True)
class OutOfCore:
    """How to train out of core: most passes over the pool, rows per chunk, L2 strength."""

    epochs: int = EPOCHS
    chunk_rows: int = CHUNK_ROWS
    alpha: float = ALPHA

    def record(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "chunk_rows": self.chunk_rows, "alpha": self.alpha}


def make_sgd(seed: int, alpha: float = ALPHA, class_weight: dict[int, float] | str | None = None):
    """The unfitted ``SGDClassifier`` of the ``sgd`` head: logistic loss, L2, averaged weights."""
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(loss="log_loss", alpha=alpha, average=True, class_weight=class_weight, random_state=seed)


def chunk_order(order: np.ndarray, chunk_rows: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Chunks of ``order`` (contiguous runs of ``chunk_rows``) in a random order, rows shuffled within each."""
    starts = np.arange(0, len(order), chunk_rows)
    for start in rng.permutation(starts):
        yield rng.permutation(order[start : start + chunk_rows])


def fit_sgd(cache_dir: str | Path, encoder: Any, texts: Sequence[str], labels: np.ndarray, *,
            settings: OutOfCore = OutOfCore(), class_weight: str | None = None, seed: int = 0,
            on_chunk: Callable[[int], None] | None = None):
    """Fit the ``sgd`` head on the cached vectors of ``texts`` by ``encoder`` (its ``fingerprint`` and ``dim``)
    (all cached already, e.g. by ``embed``) as :func:`fit_chunks` does.

    ``labels`` are 0/1. ``class_weight="balanced"`` weights classes by their counts over the whole
    pool (``partial_fit`` cannot compute that itself). ``on_chunk(n)`` is called after each chunk of
    ``n`` rows (e.g. a progress bar). Holds the store's shared lock while training, so writers wait.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels.")
    _class_counts(labels)
    with Store(cache_dir, encoder.fingerprint).pinned(text_keys(texts), encoder.dim) as (rows, order):
        return fit_chunks(rows, order, labels, settings=settings, class_weight=class_weight, seed=seed,
                          on_chunk=on_chunk)


def _class_counts(labels: np.ndarray) -> np.ndarray:
    """Rows per class of 0/1 ``labels``; ValueError unless both classes are present."""
    counts = np.bincount(labels, minlength=2)
    if len(counts) != 2 or counts.min() == 0:
        raise ValueError(f"labels must be 0/1 with both classes present; got counts {counts.tolist()}.")
    return counts


def fit_chunks(
    rows: Callable[[np.ndarray], np.ndarray],
    order: np.ndarray,
    labels: np.ndarray,
    *,
    settings: OutOfCore = OutOfCore(),
    class_weight: str | None = None,
    seed: int = 0,
    on_chunk: Callable[[int], None] | None = None,
):
    """The ``sgd`` head fitted on ``rows(positions)`` -> vectors, chunk by chunk over ``order`` (every
    position once, in the order that reads fastest; ``settings``: passes, rows per chunk, L2 strength);
    ``labels`` by position. What :func:`fit_sgd` runs on the cache, and compare's whole-pool cell on whatever
    holds its rows."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    epochs, chunk_rows, alpha = settings.epochs, settings.chunk_rows, settings.alpha
    labels = np.asarray(labels, dtype=np.int64)
    counts = _class_counts(labels)
    if epochs < 1 or chunk_rows < 1:
        raise ValueError(f"epochs and chunk_rows must be at least 1, got {epochs} and {chunk_rows}.")
    weights = {c: len(labels) / (2 * counts[c]) for c in (0, 1)} if class_weight == "balanced" else class_weight
    scaler, clf = StandardScaler(), make_sgd(seed, alpha, weights)
    rng = np.random.default_rng(seed)
    for idx in chunk_order(order, chunk_rows, rng):
        scaler.partial_fit(rows(idx))
    best, stale = np.inf, 0
    for epoch in range(epochs):
        loss = 0.0
        for idx in chunk_order(order, chunk_rows, rng):
            X, y = scaler.transform(rows(idx)), labels[idx]
            if hasattr(clf, "coef_"):  # progressive loss: each chunk scored before it is learnt
                loss += float(np.logaddexp(0, -(2 * y - 1) * clf.decision_function(X)).sum())
            clf.partial_fit(X, y, classes=np.array([0, 1]))
            if on_chunk:
                on_chunk(len(idx))
        # sklearn's own stopping rule for SGD's fit: no epoch TOL per row better than the best for PATIENCE epochs
        stale = stale + 1 if loss > best - TOL * len(order) else 0
        best = min(best, loss) if loss else best
        if stale >= PATIENCE:
            break
    clf.n_iter_ = epoch + 1  # passes run (partial_fit counts one per call)
    return Pipeline([("scale", scaler), ("clf", clf)])
