"""Long reviews built from real short ones, to measure what a long-text strategy buys.

Full-length reviews with labels are not shipped here, so :func:`concatenate` joins ``per_doc``
snippets of one movie that share a label into one document (label and movie kept). Used by the
long-text tests and ``benchmarks/bench_long.py``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pipeline.data.dataset import Dataset, DataError


def concatenate(ds: Dataset, per_doc: int, seed: int = 0, limit: int | None = None) -> Dataset:
    """Documents of ``per_doc`` same-movie, same-label snippets of ``ds`` (shuffled by ``seed``).

    Each (group, label) pair gives ``len // per_doc`` documents; leftovers are dropped. ``limit``
    keeps a balanced, seeded sample of at most that many documents.
    """
    if ds.labels is None or ds.groups is None:
        raise DataError(f"{ds.name}: concatenating reviews needs labels and groups (e.g. movie).")
    if per_doc < 1:
        raise ValueError(f"per_doc must be at least 1, got {per_doc}.")
    rng = np.random.default_rng(seed)
    members: dict[tuple[str, int], list[int]] = {}
    for i, (group, label) in enumerate(zip(ds.groups, ds.labels)):
        members.setdefault((str(group), int(label)), []).append(i)
    texts, labels, groups = [], [], []
    for (group, label), rows in sorted(members.items()):
        rows = list(rng.permutation(rows))
        for start in range(0, len(rows) - per_doc + 1, per_doc):
            texts.append(" ".join(ds.texts[i] for i in rows[start : start + per_doc]))
            labels.append(label)
            groups.append(group)
    y = np.asarray(labels, dtype=np.int64)
    keep = np.arange(len(texts))
    if limit is not None and limit < len(texts):
        per_class = [rng.permutation(np.flatnonzero(y == c))[: limit // 2] for c in (0, 1)]
        keep = np.sort(np.concatenate(per_class))
    return replace(ds, texts=[texts[i] for i in keep], labels=y[keep], groups=[groups[i] for i in keep],
                   name=f"{ds.name}-concat{per_doc}")
