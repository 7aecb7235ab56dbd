"""Human-readable summary of a loaded dataset and its split (for ``data show``)."""

from __future__ import annotations

import numpy as np

from pipeline.data.dataset import Dataset
from pipeline.data.words import has_unspaced, words_of


def _balance(ds: Dataset) -> str:
    if ds.labels is None:
        return "unlabelled"
    if not len(ds):
        return "no texts"
    pos = int(ds.labels.sum())
    neg = len(ds) - pos
    positive, negative = (_label_name(name) for name in (ds.label_names[1], ds.label_names[0]))
    return f"{positive} {pos} ({pos / len(ds):.1%}), {negative} {neg} ({neg / len(ds):.1%})"


def _label_name(name: str) -> str:
    """A label as ``data show`` prints it before its count: quoted where it would read as part of the number."""
    return repr(str(name)) if any(c.isdigit() for c in str(name)) or not str(name).strip() else str(name)


def _groups(ds: Dataset) -> str:
    if ds.groups is None:
        return "none (split by text hash)"
    named = {g for g in ds.groups if g is not None}
    missing = sum(g is None for g in ds.groups)
    merged = ds.report.groups_merged
    return (f"{len(named)}" + (f" (+{missing} rows without a group)" if missing else "")
            + (f"; {merged} other name(s) merged into these, as they share an identical review" if merged else ""))


def empty_test_line(n_test: int, grouped: bool) -> str | None:
    """One line where no text fell in the test split, so nothing is scored: why, and what to do; None otherwise."""
    if n_test:
        return None
    if grouped:
        return ("no group fell in the test split (whole groups go there, about one in five, by a hash of the name), "
                "so nothing is scored on it: with few groups leave out --group-col to split the rows by text, or "
                "score a labelled file of held-out texts with evaluate")
    return "no text fell in the test split (about one in five does), so nothing is scored on it: give more texts"


def _count(x: float) -> str:
    """A count as ``data show`` prints it: whole where it is whole, else to one decimal."""
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def _words_line(texts: list[str]) -> str:
    """Words per text: by spaces, with a character of Han, kana, Thai and the like counting half a word."""
    words = np.array([words_of(t) for t in texts])
    note = " (a Han, kana or Thai character counts half a word)" if any(has_unspaced(t) for t in texts) else ""
    return (f"words/text    min {_count(words.min())}, median {_count(np.median(words))}, mean {words.mean():.1f}, "
            f"max {_count(words.max())}{note}")


def format_summary(ds: Dataset, pool: Dataset, test: Dataset, n_rows: int = 5) -> str:
    """Rows, class balance, length stats, dropped counts, groups and split sizes, as text."""
    chars = np.array([len(t) for t in ds.texts])
    r = ds.report
    lines = [
        f"source        {ds.name}",
        f"rows read     {r.rows_read}",
        f"kept          {len(ds)} unique non-empty texts",
        f"dropped       {r.empty_dropped} empty"
        + (f" ({r.missing_dropped} of them null, NaN or a marker such as NULL)" if r.missing_dropped else "")
        + f", {r.duplicates_dropped} exact duplicates"
        + (f" ({r.conflicting_duplicates} with conflicting labels, first kept)" if r.conflicting_duplicates else "")
        + "".join(f", {n} {what}" for what, n in r.other_dropped.items()),
        f"labels        {_balance(ds)}",
        *([f"label values  {r.label_line()}"] if r.label_line() else []),
        _words_line(ds.texts),
        f"chars/text    min {chars.min()}, median {int(np.median(chars))}, mean {chars.mean():.1f}, max {chars.max()}",
        f"groups        {_groups(ds)}",
        f"split         pool {len(pool)} ({_balance(pool)})",
        f"              test {len(test)} ({_balance(test)})",
    ]
    if ds.groups is not None:
        shared = {g for g in pool.groups if g is not None} & {g for g in test.groups if g is not None}
        lines.append(
            f"              groups: pool {len({g for g in pool.groups if g})}, test "
            f"{len({g for g in test.groups if g})}, shared {len(shared)}"
        )
    empty = empty_test_line(len(test), ds.groups is not None)
    if empty:
        lines.append(f"              {empty}")
    for example in r.conflict_examples:
        lines.append(f"conflict      {example}")
    lines.append("examples")
    for i in range(min(n_rows, len(ds))):
        label = "?" if ds.labels is None else ds.label_names[int(ds.labels[i])]
        text = ds.texts[i] if len(ds.texts[i]) <= 100 else ds.texts[i][:97] + "..."
        lines.append(f"  [{label}] {text}")
    return "\n".join(lines)
