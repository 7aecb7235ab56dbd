"""What ``suggest`` and ``label`` work on: the texts of SOURCE, the labels given so far, their cached vectors.

The labels so far are read by :func:`pipeline.data.dataset.read_labels`. A :class:`Workspace` holds every text of SOURCE (the candidates), then each labelled text that is not
in SOURCE (it still trains the model), their vectors from the embedding cache, and the labels so far
by row. :func:`suggest_rows` turns a strategy's picks into the rows of ``to_label.csv``; :func:`suggest` is
the ``suggest`` command's whole job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.active.strategies import propose
from pipeline.data.dataset import Dataset


@dataclass
class Workspace:
    """Texts (SOURCE's first), their vectors, and the labels known so far (row -> 0/1)."""

    texts: list[str]
    X: np.ndarray
    n_source: int  # rows [0, n_source) are SOURCE's: the candidates to label
    labels: dict[int, int]
    label_names: tuple[str, str]

    @property
    def labelled(self) -> np.ndarray:
        return np.fromiter(self.labels, dtype=np.int64, count=len(self.labels))

    @property
    def y(self) -> np.ndarray:
        return np.fromiter(self.labels.values(), dtype=np.int64, count=len(self.labels))

    def counts(self) -> dict[str, int]:
        """Labels so far per class name."""
        y = self.y
        return {name: int((y == i).sum()) for i, name in enumerate(self.label_names)}


def workspace(source: Dataset, labelled: Dataset | None, encoder: Any, cache_dir: str | Path | None = None,
              source_options: dict[str, Any] | None = None) -> Workspace:
    """The :class:`Workspace` of SOURCE and the labels so far (``labelled``, a loaded labels file, or None),
    with vectors of ``encoder`` (a spec or an encoder) read from, or added to, the cache."""
    from pipeline.store.cache import EmbeddingCache
    from pipeline.encoders.registry import resolve_encoder

    texts = list(source.texts)
    row_of = {t: i for i, t in enumerate(texts)}
    labels: dict[int, int] = {}
    if labelled is not None and len(labelled):
        for text, label in zip(labelled.texts, labelled.labels):
            if text not in row_of:
                row_of[text] = len(texts)
                texts.append(text)
            labels[row_of[text]] = int(label)
    names = labelled.label_names if labelled is not None else ("negative", "positive")
    X = EmbeddingCache(cache_dir).vectors(resolve_encoder(encoder, cache_dir, source_options), texts)
    return Workspace(texts, X, len(source), labels, names)


def read_source(source: str, source_options: dict[str, Any]) -> tuple[Dataset, Dataset | None]:
    """(texts, held): every distinct non-empty text of SOURCE, labelled or not, as the texts to label; and the
    labels SOURCE's label column already holds (the rows that have one), or None where it holds none."""
    from pipeline.data.dataset import load, read_texts

    ds = load(source, require_labels=False, **source_options)
    if ds.labels is None:
        return ds, None
    texts = read_texts(source, source_options.get("text_col", "text"))
    return Dataset(list(dict.fromkeys(t for t in texts if t)), None, name=ds.name), ds


def with_held(held: Dataset, so_far: Dataset | None) -> tuple[Dataset, list[tuple[str, int]], int]:
    """(labels so far with the ``held`` ones added, the held (text, class) pairs added, how many held texts ``so_far``
    labels otherwise): a text ``so_far`` labels keeps that label; the names are ``so_far``'s, or negative/positive."""
    names = so_far.label_names if so_far is not None else ("negative", "positive")
    known = {} if so_far is None else dict(zip(so_far.texts, so_far.labels.tolist()))
    added = [(t, int(y)) for t, y in zip(held.texts, held.labels.tolist()) if t not in known]
    differ = sum(known[t] != y for t, y in zip(held.texts, held.labels.tolist()) if t in known)
    texts, labels = [*known, *(t for t, _ in added)], [*known.values(), *(y for _, y in added)]
    return Dataset(texts, np.array(labels, dtype=np.int64), label_names=names, name=held.name), added, differ


def held_line(source: str, label_col: str, held: Dataset, taken: tuple[list[tuple[str, int]], int, str] | None) -> str:
    """What became of the labels SOURCE's column ``label_col`` holds (``held``): ``taken`` is None when they were not
    taken, else (the pairs added, how many the labels file labels otherwise, where they went)."""
    if taken is None:
        counts = ", ".join(f"{int((held.labels == c).sum()):,} {name}" for c, name in enumerate(held.label_names))
        return (f"{source}: its column {label_col!r} already holds {len(held):,} labels ({counts}); they are proposed "
                "again like any text: --take-labels starts from them")
    added, differ, into = taken
    kept = len(held) - len(added)
    positive = sum(y for _, y in added)
    line = (f"{source}: took {len(added):,} labels from its column {label_col!r} ({len(added) - positive:,} negative, "
            f"{positive:,} positive){into}")
    return line + (f"; {kept:,} of its labelled texts are labelled in --labels already and keep that label"
                   + (f" ({differ:,} of them otherwise than in {source})" if differ else "") if kept else "")


def labelling_encoder(spec: str, texts: list[str], cache_dir: str | Path | None,
                      source_options: dict[str, Any]) -> tuple[Any, list[str]]:
    """(encoder, lines): the encoder of ``spec`` a labelling workspace reads, a transformer under backend auto
    guarded on ``texts`` (``mpnet[backend=torch]`` for torch), and the lines saying how it runs; a routed spec on
    texts with too few English ones runs its other side alone, as in ``fit``."""
    from pipeline.encoders.auto import command_encoder
    from pipeline.encoders.routed import other_side_alone
    from pipeline.encoders.spec import apply_flags
    from pipeline.paths import cache_dir_or_default

    options = {"work_dir": cache_dir_or_default(cache_dir), "source_options": source_options}
    parsed, line = other_side_alone(apply_flags([spec])[0], texts)
    encoder, lines = command_encoder(spec, parsed, texts, options, backend=None, quantize=None)
    return encoder, [line] * bool(line) + lines


@dataclass(frozen=True)
class Suggestion:
    """What ``suggest`` proposes: the ``k`` texts of ``source`` (read with ``source_options``) most worth labelling
    by ``strategy``, with ``head`` fitted on the labels of ``labels_file`` so far (None: none yet) and ``seed``,
    on the vectors of ``encoder`` (a spec) through the cache in ``cache_dir``."""

    source: str
    encoder: str
    strategy: str
    k: int = 50
    labels_file: str | None = None
    head: str = "logreg"
    seed: int = 0
    cache_dir: str | Path | None = None
    source_options: dict[str, Any] = field(default_factory=dict)
    take_labels: bool = False  # start from the labels SOURCE's label column holds
    keep_cols: tuple[str, ...] = ()  # columns of SOURCE carried into each row, before the text


SUGGESTED_COLUMNS = ("text", "label", "guess", "p_positive", "reason")  # what each row of to_label.csv holds


def suggest(job: Suggestion, echo: Callable[[str], None] = print) -> tuple[list[dict[str, Any]], Workspace]:
    """(rows of ``to_label.csv``, the workspace they came from) for ``job``; ``echo`` says how the encoder runs."""
    from pipeline.data.dataset import read_labels

    kept = kept_by_text(job.source, job.source_options.get("text_col", "text"), job.keep_cols)
    ds, held = read_source(job.source, job.source_options)
    positive = job.source_options.get("positive")  # the labels file may use the site's own names (oui/non)
    labelled = read_labels(job.labels_file, positive=positive) if job.labels_file else None
    if held is not None:
        taken = None
        if job.take_labels:
            labelled, added, differ = with_held(held, labelled)
            taken = (added, differ, "")
        echo(held_line(job.source, job.source_options.get("label_col", "label"), held, taken))
    encoder, lines = labelling_encoder(job.encoder, ds.texts, job.cache_dir, job.source_options)
    for line in lines:
        echo(line)
    ws = workspace(ds, labelled, encoder, job.cache_dir, source_options=job.source_options)
    rows = suggest_rows(ws, job.strategy, job.k, seed=job.seed, head=job.head)
    return [{**kept[r["text"]], **r} for r in rows] if job.keep_cols else rows, ws


def kept_by_text(source: str, text_col: str, keep_cols: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Text -> the values of ``keep_cols`` on its first row of ``source`` (an id, a date), read before any work, or
    ``{}`` without ``keep_cols``; OptionError for a column to_label.csv has of its own."""
    from pipeline import OptionError
    from pipeline.data.dataset import read_rows

    if not keep_cols:
        return {}
    clash = next((c for c in keep_cols if c in SUGGESTED_COLUMNS and c != text_col), None)
    if clash:
        raise OptionError(f"--keep-col {clash}: to_label.csv has a {clash!r} column of its own; rename that column "
                          f"of {source} to keep it.")
    rows = read_rows(source, text_col, keep_cols)
    kept: dict[str, dict[str, Any]] = {}
    for text, values in zip(rows.texts, rows.kept):
        kept.setdefault(text, values)
    return kept


def suggest_rows(ws: Workspace, strategy: str, k: int, *, seed: int = 0, head: str = "logreg") -> list[dict[str, Any]]:
    """Rows of ``to_label.csv``: text, an empty label column to fill in, the model's current guess and
    P(positive) (empty before both classes have a label), and why each text was chosen."""
    outside = np.arange(ws.n_source, len(ws.texts))  # labelled texts not in SOURCE: never proposed
    picks = propose(strategy, ws.X, ws.labelled, ws.y, k, rng=np.random.default_rng(seed), exclude=outside, head=head)
    rows = []
    for s in picks:
        guess = "" if s.p_positive is None else ws.label_names[int(s.p_positive >= 0.5)]
        rows.append({"text": ws.texts[s.index], "label": "", "guess": guess,
                     "p_positive": "" if s.p_positive is None else round(s.p_positive, 4), "reason": s.reason})
    return rows
