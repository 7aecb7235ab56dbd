"""Helpers shared by the tests."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.dataset import Dataset


def write_reviews_csv(path: Path, ds: Dataset, idx: Iterable[int]) -> str:
    """Write rows ``idx`` of a labelled dataset as a real CSV file with columns text, label, movie."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "movie"])
        for i in idx:
            w.writerow([ds.texts[i], ds.label_names[ds.labels[i]], None if ds.groups is None else ds.groups[i]])
    return str(path)


def write_reviews_jsonl(path: Path, ds: Dataset, idx: Iterable[int]) -> str:
    """Write rows ``idx`` of a labelled dataset as a real JSONL file with keys text, label, movie (JSON keeps
    line breaks inside texts, which CSV readers may take for a broken quote)."""
    with open(path, "w", encoding="utf-8") as f:
        for i in idx:
            group = None if ds.groups is None else ds.groups[i]
            f.write(json.dumps({"text": ds.texts[i], "label": ds.label_names[ds.labels[i]], "movie": group}) + "\n")
    return str(path)


def write_small_glove(glove: Any, path: Path, n_words: int = 5000) -> tuple[list[str], np.ndarray]:
    """Write the ``n_words`` most frequent words of a GloVe encoder as a real GloVe text file."""
    words = glove.vectors.words[:n_words]
    vecs = np.asarray(glove.vectors.vectors[:n_words])
    with open(path, "w", encoding="utf-8") as f:
        for w, v in zip(words, vecs):
            f.write(w + " " + " ".join(f"{x:.6f}" for x in v) + "\n")
    return words, vecs


def write_star_sheet(path: Path, ds: Dataset, idx: Iterable[int], n_rated: int) -> str:
    """Write rows ``idx`` of a labelled dataset as a shop's sheet (columns review, stars) whose first ``n_rated`` rows
    are rated, 4 or 5 for a positive review and 1 or 2 for a negative one, the first of them 3, and the rest not yet."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "stars"])
        for n, i in enumerate(idx):
            w.writerow([ds.texts[i], "" if n >= n_rated else 3 if n == 0 else 3 * ds.labels[i] + 1 + n % 2])
    return str(path)
