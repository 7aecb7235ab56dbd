"""Which unlabelled texts a run learns from, and a record of where they came from.

By default the pool texts outside the label budget sample, their labels dropped (a user with a few
hundred labels and thousands of unlabelled reviews). ``--unlabelled SOURCE`` gives the texts of any
source instead (labels, if the file has them, are not read): usually texts of the domain the model is
for, which the pool's rest would outnumber and drown (on vader-amazon, frozen self-training gained
+5.6 points at 128 RT labels from the target's texts alone and +1.7 with the pool's rest beside them;
``benchmarks/bench_unlabelled.py --target``). Texts of the labelled sample are removed.
Test-split texts are never added by default; where the user passes them, the run is transductive
and the record counts them, so reports can say so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.data.dataset import Dataset


@dataclass(frozen=True)
class Unlabelled:
    """Unlabelled texts (no labels, by construction) and where they came from."""

    texts: list[str]
    record: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


def read_unlabelled(sources: Sequence[str], *, text_col: str = "text", text_option: str = "--text-col",
                    **_: Any) -> dict[str, list[str]]:
    """The texts of each ``--unlabelled`` SOURCE (any format :func:`pipeline.data.dataset.load` reads), by source.

    Only the text column is read: a label column, if present, is not. For ``rt`` that is every text,
    the test split's included (passing it is the transductive case). ``text_option``: the option a missing text
    column's error names.
    """
    from pipeline.data.dataset import DataError, load

    out = {}
    for source in sources:
        try:
            ds = load(source, text_col=text_col, label_col=None, require_labels=False, text_option=text_option)
        except DataError as e:
            raise type(e)(f"--unlabelled {e}") from None
        out[source] = list(ds.texts)
    return out


def gather(pool: Dataset, train_idx: np.ndarray | None, test: Dataset | None,
           extra: dict[str, list[str]] | None = None, *, pool_rest: bool | None = None) -> Unlabelled:
    """The unlabelled set of a run trained on rows ``train_idx`` of ``pool``.

    The pool texts outside ``train_idx`` (``None``: the whole pool is labelled, none left) when
    ``pool_rest`` is true (``None``: only when no ``extra`` source is given), then the ``extra``
    sources' texts; labelled texts and repeats removed. Only texts, never labels, are taken from
    ``pool``. ``record`` counts texts by origin and how many are in the ``test`` split
    (``transductive``: > 0 only when the user passed them).
    """
    seen = set(pool.texts) if train_idx is None else {pool.texts[i] for i in train_idx}  # the labelled texts
    texts: list[str] = []
    counts: dict[str, int] = {}
    if pool_rest is None:
        pool_rest = not extra
    rest = [] if train_idx is None or not pool_rest else np.setdiff1d(np.arange(len(pool)), train_idx)
    origins = [("pool", [pool.texts[i] for i in rest])] + list((extra or {}).items())
    for origin, candidates in origins:
        before = len(texts)
        for t in candidates:
            if t not in seen:
                seen.add(t)
                texts.append(t)
        counts[origin] = len(texts) - before
    test_texts = set(test.texts) if test is not None else set()
    n_test = sum(t in test_texts for t in texts)
    record = {"size": len(texts), "hash": texts_hash(texts), "sources": counts, "test_split_texts": n_test,
              "transductive": n_test > 0}
    return Unlabelled(texts, record)


def texts_hash(texts: Sequence[str]) -> str:
    """sha256 of the texts in order (a corpus identity for caches and manifests)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def describe(record: dict[str, Any]) -> str:
    """One line for users: how many unlabelled texts from where, and the transductive warning."""
    parts = ", ".join(f"{n:,} from {origin}" for origin, n in record["sources"].items() if n)
    line = f"unlabelled: {record['size']:,} texts ({parts or 'none'})"
    if record["transductive"]:
        line += (f"; TRANSDUCTIVE: {record['test_split_texts']:,} of them are test-split texts you passed, "
                 "so test scores are not those of unseen texts")
    return line


def for_budget(ds: Dataset, budget: int | None, seed: int,
               extra: dict[str, list[str]] | None = None) -> tuple[Dataset, Dataset, Unlabelled]:
    """(training set, test set, unlabelled set) of a run on ``budget`` labels of ``ds``'s pool: the same
    split and sample as :func:`pipeline.fit.train.train_test`, and as the unlabelled set the ``extra``
    sources' texts or, without any, the rest of the pool (labels dropped; see :func:`gather`)."""
    from pipeline.data.dataset import DataError, budget_indices, split

    if ds.labels is None:
        raise DataError(f"{ds.name or 'data'}: has no labels to train on; pass --label-col (and --positive).")
    pool, test = split(ds)
    idx = budget_indices(pool, budget, seed)
    return pool.subset(idx), test, gather(pool, None if budget is None else idx, test, extra)
