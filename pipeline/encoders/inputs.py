"""Model inputs of an exported encoder: content word-piece ids with the special tokens around them, padded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def model_inputs(rows: list[list[int]], specials: Sequence[Sequence[int]],
                 pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` (int64) of content-id ``rows``: each between the model's prefix and
    suffix tokens (``specials``), padded with ``pad_id`` to the longest row."""
    prefix, suffix = (list(s) for s in specials)
    rows = [prefix + row + suffix for row in rows]
    width = max(map(len, rows))
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask
