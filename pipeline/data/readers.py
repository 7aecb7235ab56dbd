"""One reader for every file format: records in batches, and the checks every command applies to them.

``embed`` (streaming), ``fit``, ``predict --input``, ``evaluate`` and ``data show`` all read files here,
so a bad file gets the same message from each: the file, the line (CSV, TSV, JSONL: the physical line
where the record starts) or row (Parquet, JSON array), the column and the fix. CSV, TSV and JSONL are
read line by line and Parquet row group by row group, so memory stays bounded whatever the file size;
a JSON array is parsed whole.

CSV/TSV records are checked for what a reader would merge or split differently from how a person sees
the file: a quote that is never closed, a closing quote followed by more text, a duplicated header
name and an unquoted delimiter are refused. Texts that span lines inside quotes are read as one row
and counted in a warning naming the first such line, or the first that looks like rows merged by an
unclosed quote (a quoted text that opens on, and holds, lines shaped like whole rows).
"""

from __future__ import annotations

import csv
import json
import math
import shlex
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline import ReviewTransferError
from pipeline.data.encodings import FALLBACK, legacy_encoding

FORMATS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")  # workbooks: saved as CSV, not renamed
STREAM_FORMATS = (".parquet", ".csv", ".tsv", ".jsonl")  # read in bounded batches (not .json)
LINE_FORMATS = (".csv", ".tsv", ".jsonl")  # positions are physical lines; others count rows
BATCH_ROWS = 50_000
MAX_CELL_CHARS = 1 << 26  # a larger CSV cell is an unclosed quote, not a review
# Cells that spreadsheet and dataframe tools write for a missing value: never a review or a label.
MISSING_MARKERS = frozenset({"NaN", "nan", "NAN", "NULL", "null", "None", "N/A", "n/a", "#N/A", "<NA>"})

Record = tuple[int, dict[str, Any]]  # (line or row number, column -> value)


class DataError(ReviewTransferError, ValueError):
    """Bad input data; the message names the file, row or column and what to do."""


class MissingColumnError(DataError):
    """A column the options name is not in the source; the message names the option that fixes it."""


class DataWarning(UserWarning):
    """Input that loads, but maybe not as its author meant (e.g. texts with line breaks inside quotes)."""


def file_path(source: str) -> Path:
    """``source`` as an existing file of a known format, or DataError saying what to give."""
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: no such file{_near_file(path)}. Give a path to a {'/'.join(FORMATS)} file, 'rt' "
                        "or 'hf:NAME'.")
    if not path.is_file():
        what = "a directory" if path.is_dir() else "not a regular file"
        raise DataError(f"{source}: is {what}, not a data file. Give a path to a {'/'.join(FORMATS)} file inside it.")
    if path.suffix.lower() in SPREADSHEETS:
        raise DataError(f"{source}: a spreadsheet workbook, which is not read directly; save its sheet as CSV (Excel: "
                        f"File > Save As > 'CSV UTF-8 (Comma delimited)'; LibreOffice: 'Text CSV', UTF-8) and give the "
                        f"{path.stem}.csv it writes.")
    if path.suffix.lower() not in FORMATS:
        raise DataError(
            f"{source}: unknown format {path.suffix!r}; expected one of {', '.join(FORMATS)} "
            "(rename the file or convert it)."
        )
    return path


def _near_file(path: Path) -> str:
    """``" (did you mean NAME?)"`` for a data file beside ``path`` whose name is close to it, else ``""``."""
    import difflib

    try:
        names = [p.name for p in path.parent.iterdir() if p.suffix.lower() in FORMATS] if path.parent.is_dir() else []
    except OSError:
        return ""
    near = (difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
            or [n for n in names if n.lower() == path.name.lower()])
    return f" (did you mean {path.parent / near[0]}?)" if near else ""


def check_source(source: str) -> None:
    """DataError naming ``source`` unless it is ``rt``, ``hf:NAME`` or an existing file of a known format
    (cheap: nothing is read), so a command fails on a missing file before any work."""
    if source != "rt" and not source.startswith("hf:"):
        file_path(source)


def unit(source: str | Path) -> str:
    """What a record position counts in ``source``: ``line`` (CSV, TSV, JSONL) or ``row``."""
    return "line" if Path(source).suffix.lower() in LINE_FORMATS else "row"


def read_batches(source: str | Path, required: Mapping[str, str], optional: Sequence[str] = (),
                 batch_rows: int = BATCH_ROWS) -> Iterator[list[Record]]:
    """Records of the file ``source``, at most ``batch_rows`` at a time, structure checked.

    ``required`` maps each column that must exist to the option naming it (``{"text": "--text-col"}``);
    ``optional`` columns are read when present. Parquet reads only these columns.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}.")
    optional = [c for c in optional if c]  # an unlabelled read names no label column (None)
    path = file_path(str(source))
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _parquet_batches(path, required, optional, batch_rows)
        return
    if suffix in (".csv", ".tsv"):
        records = _csv_records(path, "\t" if suffix == ".tsv" else _csv_delimiter(path), [*required, *optional])
    else:
        records = _jsonl_records(path) if suffix == ".jsonl" else _json_records(path)
        dotted = [c for c in dict.fromkeys([*required, *optional]) if "." in c]
        records = _with_dotted(records, dotted) if dotted else records
    batch: list[Record] = []
    checked = False
    aliases: dict[str, str] = {}
    for pos, rec in records:
        if not checked:  # on the first record: CSV records hold every header name
            aliases = _unicode_aliases(rec, [*required, *optional])
            check_columns({**rec, **dict.fromkeys(aliases)}, str(path), required)
            checked = True
        for col, key in aliases.items():
            if key in rec:
                rec[col] = rec[key]
        batch.append((pos, rec))
        if len(batch) >= batch_rows:
            yield batch
            batch = []
    if batch:
        yield batch


def read_records(source: str | Path, required: Mapping[str, str], optional: Sequence[str] = ()) -> Iterator[Record]:
    """:func:`read_batches` one record at a time."""
    for batch in read_batches(source, required, optional):
        yield from batch


def column_names(source: str | Path) -> list[str]:
    """The column names of file ``source`` (a Parquet file's schema; else its first record's keys)."""
    path = file_path(str(source))
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    first = next(read_batches(path, {}, (), batch_rows=1), [(0, {})])
    return [str(k) for k in first[0][1]]


def read_texts(source: str | Path, text_col: str, *, keep_empty: bool,
               batch_rows: int = BATCH_ROWS) -> Iterator[list[str]]:
    """Stripped texts of column ``text_col``, a batch at a time; empty ones kept as ``""`` or dropped."""
    where = str(source)
    for batch in read_batches(source, {text_col: "--text-col"}, (), batch_rows):
        texts = [text_of(rec.get(text_col), where, unit(source), pos, text_col) for pos, rec in batch]
        texts = texts if keep_empty else [t for t in texts if t]
        if texts:
            yield texts


# ---------------------------------------------------------------------------------------------- values
def check_columns(names: Iterable[str], where: str, required: Mapping[str, str]) -> None:
    """MissingColumnError naming the first missing ``required`` column (column -> the option that names it), the
    columns present and the option to fix; given the first record (a mapping), a missing text column (its option
    ``--text-col`` or ``--unlabelled-text-col``) also names the column of its longest text."""
    first = names if isinstance(names, Mapping) else {}
    names = list(names)
    for col, flag in required.items():
        if col not in names:
            import difflib

            near = difflib.get_close_matches(col, [str(n) for n in names], n=1, cutoff=0.75)
            raise MissingColumnError(
                f"{where}: missing column {col!r}; columns present: {sorted(names)}. Pass the right name with {flag}."
                + (f" Did you mean {flag} {shlex.quote(near[0])}?" if near else
                   _likely_text(first, flag) if flag.endswith("text-col") else "")
            )


def _likely_text(record: Mapping[str, Any], flag: str) -> str:
    """A hint naming the column of ``record`` that holds its longest text of several words (inside a JSON object,
    by its dotted path: ``review.body``) as the value of ``flag``, or ``""``."""
    texts = {k: v for k, v in _strings(record) if len(v.split()) > 1}
    if not texts:
        return ""
    best = max(texts, key=lambda k: len(texts[k]))
    return f" The first row's longest text is in {best!r}: {flag} {shlex.quote(best)}."


def _strings(record: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(column, value) of every string of ``record``, those inside nested objects named by their dotted path."""
    for key, value in record.items():
        if isinstance(value, str):
            yield f"{prefix}{key}", value
        elif isinstance(value, Mapping):
            yield from _strings(value, f"{prefix}{key}.")


def is_missing(value: Any) -> bool:
    """None, a float NaN, or a missing-value marker such as ``NaN`` or ``NULL`` written as text."""
    if isinstance(value, str):
        return value.strip() in MISSING_MARKERS
    return value is None or (isinstance(value, float) and math.isnan(value))


def text_of(value: Any, where: str, unit: str, pos: int, col: str) -> str:
    """The stripped text of one cell; ``""`` for an empty or missing one (null, NaN, a marker such as ``NULL``),
    which readers drop and count, or keep as an empty row; DataError naming the file, position and column for a
    value that is not text."""
    if isinstance(value, str):
        return "" if value.strip() in MISSING_MARKERS else value.strip()
    if is_missing(value):
        return ""
    nested = {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}
    longest = max(nested, key=lambda k: len(nested[k])) if nested else None
    hint = (f" Name a field inside it: its longest text is {longest!r}, so --text-col "
            f"{shlex.quote(f'{col}.{longest}')}." if longest else " Fill in the text or pass the text column with --text-col.")
    raise DataError(f"{where}: {unit} {pos}, column {col!r} is {type(value).__name__} ({value!r:.40}); expected a "
                    f"string.{hint}")


def has_label(value: Any) -> bool:
    """Whether a label cell holds a label: not None, NaN, blank or a marker such as ``NULL``."""
    return not (is_missing(value) or (isinstance(value, str) and not value.strip()))


def label_of(value: Any, where: str, unit: str, pos: int, col: str) -> str:
    """The label of one cell as a stripped string, or DataError when it is missing."""
    if not has_label(value):
        shown = f" ({value.strip()!r})" if isinstance(value, str) and value.strip() else ""
        raise DataError(f"{where}: {unit} {pos}, column {col!r} has no label{shown}. Label or remove that row.")
    if not isinstance(value, (str, int, float)):  # bool is an int
        raise DataError(f"{where}: {unit} {pos}, column {col!r} is {type(value).__name__} ({value!r:.40}); expected "
                        "one label per row (a string or a number). Pass the label column with --label-col.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    label = str(value).strip()
    return label if label.isascii() else unicodedata.normalize("NFC", label)  # 긍정 saved decomposed is still 긍정


# ---------------------------------------------------------------------------------------------- formats
def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its line break) of a UTF-8 file, read lazily; a byte-order mark
    is dropped; bad bytes raise DataError with the iconv fix."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise DataError(f"{path}: the file is UTF-16 (its first bytes are a UTF-16 byte-order mark, as Excel's "
                                f"'Unicode Text' writes); re-save it as UTF-8 (Excel: 'CSV UTF-8') or convert it: "
                                f"`iconv -f utf-16 -t utf-8 {path.name} > fixed{path.suffix}`.")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: line {number}: byte 0x{raw[e.start]:02x} is not valid UTF-8. Re-save the "
                                f"file as UTF-8 (Excel: 'CSV UTF-8'), or convert it: {_conversion(raw, path)}.") from None
            yield number, line.removeprefix("\ufeff") if number == 1 else line


def _conversion(raw: bytes, path: Path) -> str:
    """The iconv command (and a Python one where iconv is missing) for a file whose line ``raw`` is not UTF-8, from
    the code page it most likely is in."""
    codec, language = legacy_encoding(raw)
    fixed = f"fixed{path.suffix}"
    fix = (f"`iconv -f {codec} -t utf-8 {path.name} > {fixed}`, or where there is no iconv (Windows): "
           f"`python -c \"open({fixed!r}, 'w', encoding='utf-8', newline='').write(open({path.name!r}, "
           f"encoding='{codec}', newline='').read())\"`")
    if codec == FALLBACK[0]:
        return f"a file from Windows or Excel is most often cp1252 ({fix}; latin1 for ISO-8859-1)"
    big5 = "; big5 for Traditional Chinese" if language == "Chinese" else ""
    return f"this line reads as {language} in {codec}, as Excel saves plain CSV on {language} Windows ({fix}{big5})"


def semicolon_csv(source: str | Path) -> bool:
    """Whether SOURCE is a .csv read as separated by ``;`` (as Excel writes CSV where the decimal mark is a comma)."""
    path = Path(source)
    return path.suffix.lower() == ".csv" and path.is_file() and _csv_delimiter(path) == ";"


def _csv_delimiter(path: Path) -> str:
    """``;`` for a .csv whose header line holds a ``;`` and no ``,`` (Excel writes so where the decimal mark is a
    comma: French, German, Spanish, ... locales), else ``,``."""
    lines = _lines(path)
    try:
        header = next((line for _, line in lines), "")
    finally:
        lines.close()
    return ";" if ";" in header and "," not in header else ","


def _csv_records(path: Path, delimiter: str, wanted: Sequence[str]) -> Iterator[Record]:
    """Records of a CSV/TSV file (strict quoting), each at the line it starts on; see the module docstring."""
    csv.field_size_limit(MAX_CELL_CHARS)
    pending: list[tuple[int, str]] = []  # raw lines of the record being parsed
    source = _lines(path)

    def feed() -> Iterator[str]:
        for number, line in source:
            pending.append((number, line))
            yield line

    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    spanning: list[int] = []
    suspect: str | None = None  # the first quoted text that looks like merged rows
    yielded = False
    while True:
        pending.clear()
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise _csv_error(path, pending, str(e)) from None
        start = pending[0][0] if pending else 0
        if header is None:
            header = row
            _check_header(path, header, wanted)
            continue
        if not row:  # a blank line
            continue
        if len(row) > len(header):  # an unquoted delimiter would cut the text short, or line 1 is a title
            shown = "tab" if delimiter == "\t" else repr(delimiter)
            quote = f"Quote texts that contain a {shown} (\"like, this\"), as csv writers do."
            title = None if yielded else _title_line(header, row, wanted)
            if title is not None:
                raise DataError(
                    f"{path}: line 1 ({delimiter.join(header)!r}) has {len(header)} field(s) and line {start} has "
                    f"{len(row)} ({', '.join(map(repr, row[:8]))}): line 1 {title} a title above the column names. "
                    "Delete it so that the column names are the first line (a spreadsheet: delete row 1, then save "
                    "as 'CSV UTF-8') and run again."
                    + ("" if title == "is" else f" If line 1 is the header, line {start} is a text: {quote}")
                )
            raise DataError(f"{path}: line {start}: {len(row)} fields but the header has {len(header)}. {quote}")
        if len(pending) > 1:
            suspect = suspect or _merged_rows(pending, delimiter, len(header))
            spanning.append(start)
        yielded = True
        yield start, {**dict.fromkeys(header), **dict(zip(header, row))}
    if spanning:
        first = suspect or f"first at line {spanning[0]}; if a quote there is unbalanced, rows were merged: check that line"
        warnings.warn(f"{path}: {len(spanning)} row(s) hold line breaks inside quotes, each read as one row ({first}).",
                      DataWarning, stacklevel=2)


def _title_line(header: list[str], row: list[str], wanted: Sequence[str]) -> str | None:
    """Whether a header with fewer fields than the first row is a title line above the column names, as a shop's or
    a survey's export writes one: ``"is"`` where the row names a column asked for that the header lacks, ``"looks
    like"`` where the header is one field naming no column asked for (or a text with an unquoted comma under a
    one-column header), else None."""
    if any(col in row and col not in header for col in wanted):
        return "is"
    return "looks like" if len(header) == 1 and header[0] not in wanted else None


def _unicode_aliases(names: Iterable[str], wanted: Iterable[str]) -> dict[str, str]:
    """{wanted column: the file's name for it} for each wanted column the file spells with other Unicode code points
    (a Korean or accented header saved decomposed (NFD), as macOS writes it, beside a name typed composed)."""
    present = set(names)
    forms = {unicodedata.normalize("NFC", n): n for n in present if not n.isascii()}
    return {w: forms[f] for w in wanted if w not in present and (f := unicodedata.normalize("NFC", w)) in forms}


def _check_header(path: Path, header: list[str], wanted: Sequence[str]) -> None:
    for col in dict.fromkeys(wanted):
        if header.count(col) > 1:
            places = [i + 1 for i, name in enumerate(header) if name == col]
            raise DataError(
                f"{path}: line 1: column {col!r} appears {len(places)} times in the header (fields "
                f"{', '.join(map(str, places))}); rename or remove the extra ones."
            )


def _merged_rows(pending: list[tuple[int, str]], delimiter: str, n_fields: int) -> str | None:
    """Where a quoted text running over several lines opens on a line shaped like a whole row and holds
    another such line, the sign of a quote left open, said for the warning; else None. Only a sign: a
    text with line breaks and commas can match (RT written as text,label,movie has none of 107 that do;
    as text,label, a few), so this is reported, not refused."""
    if n_fields < 2 or len(pending[0][1].rstrip("\r\n").split(delimiter)) != n_fields:
        return None
    for number, line in pending[1:]:
        body = line.rstrip("\r\n")
        if '"' not in body and len(body.split(delimiter)) == n_fields:
            return (f"line {pending[0][0]}: the quoted text opened there runs to line {pending[-1][0]} and holds line "
                    f"{number} ({body[:60]!r}), which reads as a row of its own: if a quote is unbalanced there, rows "
                    "were merged. Close it (write \"\" for a quote inside a text)")
    return None


def _csv_error(path: Path, pending: list[tuple[int, str]], detail: str) -> DataError:
    start = pending[0][0] if pending else 1
    if "expected after" in detail:
        tsv = (" A .tsv is read with CSV quoting, so a text that starts with a quote must be quoted whole, as "
               "csv and pandas writers do (e.g. pandas' to_csv(sep='\\t')).") if path.suffix.lower() == ".tsv" else ""
        return DataError(
            f"{path}: line {start}: a closing quote is followed by more text ({detail}); a quote is unbalanced. "
            f"Write \"\" for a quote inside a quoted text, or quote the whole text.{tsv}"
        )
    if "unexpected end of data" in detail:
        return DataError(
            f"{path}: line {start}: a quote opened on this line is never closed (the file ends inside it), so "
            f"lines {start}-{pending[-1][0] if pending else start} would merge into one row. Close the quote "
            "(write \"\" for a quote inside a text)."
        )
    if "field larger than field limit" in detail:
        return DataError(
            f"{path}: line {start}: a cell of over {MAX_CELL_CHARS:,} characters; a quote opened on this line is "
            "probably never closed. Close it (write \"\" for a quote inside a text)."
        )
    return DataError(f"{path}: line {start}: unreadable CSV ({detail}). Fix that line.")


class _DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise _DuplicateKey(k)
    return dict(pairs)


def _parse_json(text: str, path: Path, line: int | None) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as e:
        at = line if line is not None else e.lineno
        raise DataError(f"{path}: line {at}: malformed JSON at column {e.colno} ({e.msg}). Fix that line.") from None
    except _DuplicateKey as e:
        at = f"line {line}" if line is not None else "an object"
        raise DataError(f"{path}: {at}: key {e.args[0]!r} appears twice in one object; keep one.") from None


def _jsonl_records(path: Path) -> Iterator[Record]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        rec = _parse_json(line.rstrip("\r\n"), path, number)  # an error at its end is on this line, not the next
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {number}: expected a JSON object per line, got {type(rec).__name__}.")
        yield number, rec


def _with_dotted(records: Iterable[Record], names: Sequence[str]) -> Iterator[Record]:
    """JSON ``records`` with each dotted column of ``names`` (``review.body``) that is not a key of its own filled
    from the nested objects it names, when they hold it."""
    for pos, rec in records:
        for name in names:
            if name not in rec:
                value: Any = rec
                for key in name.split("."):
                    value = value.get(key, _ABSENT) if isinstance(value, dict) else _ABSENT
                if value is not _ABSENT:
                    rec[name] = value
        yield pos, rec


_ABSENT = object()


def _json_records(path: Path) -> Iterator[Record]:
    text = "".join(line for _, line in _lines(path))
    data = _parse_json(text, path, None)
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"data": [...]}
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a JSON array of objects (or use .jsonl, one object per line).")
    yield from enumerate(data, start=1)


def _parquet_batches(path: Path, required: Mapping[str, str], optional: Sequence[str],
                     batch_rows: int) -> Iterator[list[Record]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        asked = list(dict.fromkeys([*required, *optional]))
        aliases = _unicode_aliases(names, asked)
        # a field of a struct column named by its dotted path (review.body), as in JSON: its column is read
        fields = _struct_paths(pf.schema_arrow)
        nested = {c: c.split(".")[0] for c in asked if c not in names and c not in aliases and c in fields}
        check_columns([*names, *aliases, *fields], str(path), required)
        wanted = list(dict.fromkeys(aliases.get(c, nested.get(c, c)) for c in asked
                                    if aliases.get(c, nested.get(c, c)) in names))
        for col in wanted:
            if names.count(col) > 1:
                raise DataError(f"{path}: column {col!r} appears {names.count(col)} times; rename the extra ones.")
        row = 1
        for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
            records = batch.to_pylist()
            for rec in records if aliases else ():
                rec.update({col: rec[key] for col, key in aliases.items()})
            numbered = list(enumerate(records, start=row))
            yield list(_with_dotted(numbered, list(nested))) if nested else numbered
            row += len(records)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({e}).") from None


def _struct_paths(schema: Any) -> list[str]:
    """The dotted path (``review.body``) of every field inside the struct columns of a Parquet ``schema``."""
    import pyarrow as pa

    paths: list[str] = []

    def walk(prefix: str, kind: Any) -> None:
        if pa.types.is_struct(kind):
            for i in range(kind.num_fields):
                field = kind.field(i)
                paths.append(f"{prefix}.{field.name}")
                walk(f"{prefix}.{field.name}", field.type)

    for field in schema:
        walk(field.name, field.type)
    return paths
