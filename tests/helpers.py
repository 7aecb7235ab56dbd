"""Helpers shared by the tests."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from pipeline.data import Dataset


def write_reviews_csv(path: Path, ds: Dataset, idx: Iterable[int]) -> str:
    """Write rows ``idx`` of a labelled dataset as a real CSV file with columns text, label, movie."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "movie"])
        for i in idx:
            w.writerow([ds.texts[i], ds.label_names[ds.labels[i]], None if ds.groups is None else ds.groups[i]])
    return str(path)
