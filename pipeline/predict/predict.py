"""Predicting with a bundle: probabilities of new texts (adapted to a prior when asked), the domain-shift
check, and the rows ``predict`` prints or writes.

Light by design, for a cold ``predict``: numpy and the standard library at module level, no scikit-learn,
no HDF5; the shift check imports scikit-learn only when there are enough texts to run it.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import OptionError
from pipeline.bundle.bundle import Bundle
from pipeline.disk import explain_full_disk
from pipeline.encoders.base import ZeroVectorWarning, zero_rows_message
from pipeline.encoders.language import letterless
from pipeline.encoders.routed import layout_of, own_sides
from pipeline.predict.prior import Adapted, PriorModel
from pipeline.data.readers import DataError, semicolon_csv
from pipeline.predict.shift import MIN_TEXTS as MIN_SHIFT_TEXTS
from pipeline.predict.shift import no_check, two_sample_auc

if TYPE_CHECKING:
    from pipeline.data.dataset import InputRows

OUTPUT_FORMATS = (".csv", ".jsonl")


def domain_shift(bundle: Bundle, X: np.ndarray) -> dict[str, Any]:
    """The ``domain_shift`` entry for vectors ``X`` of target texts: the two-sample AUC against the
    bundle's training sample (see :mod:`pipeline.predict.shift`), or nulls and the reason it could not run."""
    if bundle.shift_sample is None:
        return no_check("the bundle keeps no training sample (made before the shift check); refit it to get one")
    layout = layout_of(bundle.get_encoder())
    # a routed bundle predicts each text with its own side's parts only: its training sample is compared alike
    check = two_sample_auc(bundle.shift_sample if layout is None else own_sides(bundle.shift_sample, layout), X)
    if check is None:
        small = (f"only {len(X)} texts" if len(X) < MIN_SHIFT_TEXTS else
                 f"the model's training sample has only {len(bundle.shift_sample)} texts")
        return no_check(f"{small}; the check needs {MIN_SHIFT_TEXTS}")
    return {**check.to_dict(), "line": check.line()}


def positive_proba(bundle: Bundle, texts: Sequence[str], *, prior: float | None = None,
                   adapt_prior: bool = False) -> tuple[np.ndarray, Adapted | None, dict[str, Any]]:
    """The bundle's probability of positive for ``texts``; with ``prior`` (a known positive rate) or
    ``adapt_prior`` (estimated from these texts, applied only when the estimates agree) those
    probabilities adapted from the bundle's training prior (see :mod:`pipeline.predict.prior`); and the
    domain-shift check of the texts (:func:`domain_shift`)."""
    if prior is not None and adapt_prior:
        raise OptionError("give --prior (a known positive rate) or --adapt-prior (estimate it), not both.")
    model = PriorModel.from_manifest(bundle.manifest, str(bundle.path or "bundle")) if (
        prior is not None or adapt_prior) else None
    X = bundle.embed(list(texts))
    p = bundle.head.predict_proba(X)[:, 1]
    shift = domain_shift(bundle, X)
    return p, None if model is None else model.adapt(p, prior, shift=shift), shift


def label_texts(bundle: Bundle, texts: Sequence[str], *, prior: float | None = None,
                adapt_prior: bool = False) -> tuple[list[dict[str, Any]], Adapted | None, dict[str, Any]]:
    """One row per text, in order: ``text``, ``label`` (its name) and ``p_positive`` (adapted with
    ``prior``/``adapt_prior`` as in :func:`positive_proba`), the adaptation, if any, and the
    domain-shift check. Empty texts
    get an empty label and ``p_positive`` ``None``, so the rows still line up with the input."""
    idx = [i for i, t in enumerate(texts) if t.strip()]
    if not idx:
        raise DataError(f"all {len(texts)} texts are empty; nothing to label.")
    kept = [texts[i] for i in idx]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ZeroVectorWarning)
        p, adapted, shift = positive_proba(bundle, kept, prior=prior, adapt_prior=adapt_prior)
    for w in caught:  # zero vectors named by input row (1-based, empty texts counted), others as they came
        if isinstance(w.message, ZeroVectorWarning) and w.message.rows:
            rows = [idx[r] + 1 for r in w.message.rows]
            message = zero_rows_message(bundle.manifest["encoder"]["spec"], rows, len(kept), "input rows")
            warnings.warn(ZeroVectorWarning(message, rows), stacklevel=2)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    names = bundle.label_names
    labelled = {
        i: {"text": t, "label": names[int(q >= 0.5)], "p_positive": round(float(q), 6)}
        for i, t, q in zip(idx, kept, p if adapted is None else adapted.p_pos)
    }
    rows = [labelled.get(i, {"text": t, "label": "", "p_positive": None}) for i, t in enumerate(texts)]
    return rows, adapted, shift


@dataclass(frozen=True)
class BundleLoad:
    """The bundle a command uses and how it loads (:meth:`Bundle.load`): ``path``, the embedding ``cache_dir``,
    the encoder overrides ``long_text``/``max_length`` and the trust options ``encoder_path``/``trust_encoder``/
    ``allow_legacy``."""

    path: str | Path
    cache_dir: str | Path | None = None
    long_text: str | None = None
    max_length: int | None = None
    encoder_path: str | Path | None = None
    trust_encoder: bool = False
    allow_legacy: bool = False

    def load(self) -> Bundle:
        return Bundle.load(self.path, cache_dir=self.cache_dir, long_text=self.long_text, max_length=self.max_length,
                           encoder_path=self.encoder_path, trust_encoder=self.trust_encoder,
                           allow_legacy=self.allow_legacy)


@dataclass(frozen=True)
class Prediction:
    """What ``predict`` labels: ``texts``, or every row of column ``text_col`` of ``input_file``, with ``bundle``,
    adapted with ``prior``/``adapt_prior``; the rows go to ``output`` (.csv or .jsonl) when given."""

    bundle: BundleLoad
    texts: tuple[str, ...] = ()
    input_file: str | Path | None = None
    text_col: str = "text"
    output: str | Path | None = None
    prior: float | None = None
    adapt_prior: bool = False
    keep_cols: tuple[str, ...] = ()  # columns of ``input_file`` carried into each row, before the text
    excel: bool = False  # a .csv ``output`` with a byte-order mark, as Excel reads UTF-8


def predict_texts(job: Prediction) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, notes): :func:`label_texts` of the texts of ``job`` (read before the model loads), written to
    ``job.output`` when given; ``notes`` are for people: the adaptation, the domain-shift check, empty texts
    left unlabelled, the file written."""
    from pipeline.data.dataset import InputRows, read_rows

    _check_keep_cols(job)
    rows_in = read_rows(str(job.input_file), job.text_col, job.keep_cols) if job.input_file else InputRows(
        list(job.texts), [], [])
    texts = rows_in.texts
    model = job.bundle.load()
    model.use_cache = job.input_file is not None  # TEXT arguments are new: encoding them beats opening the cache
    rows, adapted, shift = label_texts(model, texts, prior=job.prior, adapt_prior=job.adapt_prior)
    notes = [adapted.describe()] if adapted is not None else []
    if shift.get("line"):
        notes.append(shift["line"])
    empty = sum(r["p_positive"] is None for r in rows)
    if empty:
        notes.append(f"{empty} empty text(s) left unlabelled (empty label and probability)")
    no_letters = letterless(texts)
    if no_letters:
        notes.append(letterless_note(model, texts, no_letters))
    if rows_in.kept:
        rows = [{**k, **r} for k, r in zip(rows_in.kept, rows)]
    if job.output:
        semicolons = job.excel and job.input_file is not None and semicolon_csv(job.input_file)
        written = write_rows(_text_col_named(rows, job.text_col) if job.input_file else rows, job.output, bom=job.excel,
                             semicolons=semicolons)
        notes.append(f"wrote {len(rows)} predictions to {written}; " + called_positive(rows))
        notes += _output_hints(job, rows_in)
    return rows, notes


def letterless_note(bundle: Bundle, texts: Sequence[str], rows: list[int]) -> str:
    """What ``predict`` says of the ``texts`` at ``rows``, which have no letter (emoji or numbers only): which side
    of a routed bundle reads them, and that no accuracy was measured on such texts."""
    layout = layout_of(bundle.get_encoder())
    side = ("its English side reads them (the routing counts a text with no letter as English)" if layout is not None
            else "its encoder reads them as any text")
    return (f"{len(rows):,} text(s) have no letters, only emoji, numbers or signs (first at row {rows[0] + 1}: "
            f"{texts[rows[0]][:30]!r}): {side}, and no accuracy was measured on such texts; read their labels "
            "with care")


def _text_col_named(rows: list[dict[str, Any]], text_col: str) -> list[dict[str, Any]]:
    """``rows`` with their ``text`` under the input file's own name for it (``review``), as written to --out,
    unless that name is one the output uses already (``label``)."""
    if text_col in ("text", "label", "p_positive"):
        return rows
    return [{(text_col if k == "text" else k): v for k, v in r.items()} for r in rows]


def _check_keep_cols(job: Prediction) -> None:
    """OptionError for ``keep_cols`` without an input file, or naming a column the output has already."""
    if not job.keep_cols:
        return
    if not job.input_file:
        raise OptionError("--keep-col names columns of --input FILE; give --input.")
    clash = next((c for c in job.keep_cols if c in ("label", "p_positive")), None)
    if clash:
        raise OptionError(f"--keep-col {clash}: the output has a {clash!r} column of its own; rename that column of "
                          f"{job.input_file} to keep it.")


def _output_hints(job: Prediction, rows_in: InputRows) -> list[str]:
    """What a user writing ``job.output`` may want next: the input's other columns, a byte-order mark for Excel."""
    hints = []
    others = rows_in.other_columns
    if others and not job.keep_cols:
        hints.append(f"the input's other columns ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}) are not "
                     f"in {job.output}: --keep-col {others[0]} carries one (repeat it for more)")
    if Path(job.output).suffix.lower() == ".csv" and not job.excel and any(not t.isascii() for t in rows_in.texts):
        hints.append(f"opening {job.output} in Excel? add --excel so its accents read right (UTF-8 with a "
                     "byte-order mark)")
    return hints


def _decimal_comma(value: Any) -> Any:
    """A float written with a decimal comma (``0,93``); any other value as it is."""
    return str(value).replace(".", ",") if isinstance(value, float) else value


def called_positive(rows: list[dict[str, Any]]) -> str:
    """How many of the labelled ``rows`` are called positive, and what to do if a few labels say otherwise."""
    p = [r["p_positive"] for r in rows if r["p_positive"] is not None]
    positive = sum(v >= 0.5 for v in p)
    return (f"{positive:,} of {len(p):,} ({positive / max(len(p), 1):.0%}) called positive: if a few of these texts "
            "labelled at random say a rate far from that, pass --prior RATE or `review-transfer retarget` the bundle "
            "to them (docs/guide/retarget.md)")


def check_output(path: str | Path) -> Path:
    """``path`` as a file :func:`write_rows` can write (.csv or .jsonl, in an existing folder), or OptionError."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise OptionError(f"--out {path}: unknown format {path.suffix!r}; use one of {', '.join(OUTPUT_FORMATS)}.")
    if not path.parent.is_dir():
        raise OptionError(f"--out {path}: folder {path.parent} does not exist; create it or choose another path.")
    return path


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path, *, bom: bool = False, semicolons: bool = False) -> Path:
    """Write ``rows`` as CSV or JSONL (by extension), atomically (tmp file, then ``os.replace``); ``bom``: a CSV
    starts with a UTF-8 byte-order mark, which Excel needs to read it as UTF-8; ``semicolons``: a CSV is separated
    by ``;`` with decimal commas in its numbers, as Excel reads CSV where the decimal mark is a comma."""
    path = check_output(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    encoding = "utf-8-sig" if bom and path.suffix.lower() == ".csv" else "utf-8"
    try:
        with explain_full_disk(path.parent, f"the output {path.name}",
                               "free some space there, or write the file elsewhere"), \
                open(tmp, "w", encoding=encoding, newline="") as f:
            if path.suffix.lower() == ".csv":
                writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["text", "label", "p_positive"],
                                        delimiter=";" if semicolons else ",")
                writer.writeheader()
                writer.writerows([{k: _decimal_comma(v) for k, v in r.items()} for r in rows] if semicolons else rows)
            else:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
