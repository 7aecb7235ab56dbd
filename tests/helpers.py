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
