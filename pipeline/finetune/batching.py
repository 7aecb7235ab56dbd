"""Seeded, length-bucketed batches: little padding, same order on every run and after a resume."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BUCKET_BATCHES = 16  # batches per bucket: rows are shuffled, then sorted by length within a bucket


def token_lengths(model: Any, texts: Sequence[str]) -> np.ndarray:
    """Token count of each text under ``model``'s tokenizer, capped at its ``max_seq_length``."""
    ids = model.tokenizer(list(texts), truncation=True, max_length=model.max_seq_length)["input_ids"]
    return np.array([len(i) for i in ids], dtype=np.int64)


def length_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Row indices split into batches for ``epoch``: a seeded shuffle, sorted by length within buckets
    of :data:`BUCKET_BATCHES` batches, then the batches themselves shuffled.

    The result depends only on ``(lengths, batch_size, seed, epoch)``; the number of batches does not
    depend on ``epoch``.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    step = batch_size * BUCKET_BATCHES
    for start in range(0, len(order), step):
        bucket = order[start : start + step]
        bucket = bucket[np.argsort(lengths[bucket], kind="stable")]
        batches += [bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of similar length (longest first), for inference."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
