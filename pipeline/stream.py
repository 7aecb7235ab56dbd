"""Read the texts of a large file in bounded batches, never the whole corpus at once.

Parquet, CSV/TSV and JSONL files are scanned with :mod:`pyarrow.dataset`, reading only the text
column, ``batch_rows`` rows at a time. Texts are stripped and empty ones dropped, as
:func:`pipeline.data.load` does; duplicates are left to the cache (a repeat is a cache hit).
Other sources (``rt``, ``hf:``, ``.json``) are not streamable: :func:`streamable` says which are.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cache import EmbedReport
from pipeline.data import DataError

if TYPE_CHECKING:
    from pipeline.cache import EmbeddingCache
    from pipeline.encoders.base import Encoder

STREAM_FORMATS = (".parquet", ".csv", ".tsv", ".jsonl")
BATCH_ROWS = 50_000


def streamable(source: str) -> bool:
    """Whether ``source`` is a file :func:`iter_text_batches` can read in batches."""
    return Path(source).suffix.lower() in STREAM_FORMATS and Path(source).is_file()


def _dataset(path: Path, text_col: str) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        fmt: Any = "parquet"
    elif suffix in (".csv", ".tsv"):
        fmt = ds.CsvFileFormat(
            parse_options=pcsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",", newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(column_types={text_col: pa.string()}, strings_can_be_null=False),
        )
    else:
        fmt = ds.JsonFileFormat()
    return ds.dataset(path, format=fmt)


def iter_text_batches(source: str | Path, *, text_col: str = "text", batch_rows: int = BATCH_ROWS) -> Iterator[list[str]]:
    """Stripped, non-empty texts of column ``text_col`` of ``source``, about ``batch_rows`` rows at a time.

    Raises :class:`DataError` naming the file, and the row or column, for a missing column, a null
    or non-string text, or a file pyarrow cannot parse.
    """
    import pyarrow as pa

    path = Path(source)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}.")
    try:
        dataset = _dataset(path, text_col)
        names = dataset.schema.names
        if text_col not in names:
            raise DataError(f"{path}: missing column {text_col!r}; columns present: {sorted(names)}. "
                            "Pass the right name with --text-col.")
        if not pa.types.is_string(dataset.schema.field(text_col).type) and not pa.types.is_large_string(
                dataset.schema.field(text_col).type):
            raise DataError(f"{path}: column {text_col!r} holds {dataset.schema.field(text_col).type}, "
                            "expected strings. Pass the text column with --text-col.")
        row = 0
        for batch in dataset.to_batches(columns=[text_col], batch_size=batch_rows, batch_readahead=1,
                                            fragment_readahead=1):
            values = batch.column(0).to_pylist()
            if None in values:
                bad = row + values.index(None) + 1
                raise DataError(f"{path}: row {bad}, column {text_col!r} is null; expected a string. "
                                "Fill in or remove that row.")
            row += len(values)
            texts = [t for t in (v.strip() for v in values) if t]
            if texts:
                yield texts
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: cannot read it as {path.suffix} ({e}). Check the file "
                        "(UTF-8, one header row for CSV, one JSON object per line for JSONL).") from None


def fill_stream(cache: EmbeddingCache, encoder: Encoder, batches: Iterable[Sequence[str]]) -> EmbedReport:
    """:meth:`EmbeddingCache.fill` batch after batch, with one report summed over the batches.

    ``unique`` counts distinct texts per batch; a text repeated in a later batch is a hit.
    """
    start = time.perf_counter()
    total = EmbedReport(encoder.spec, encoder.fingerprint, cache.path(encoder))
    for texts in batches:
        part = cache.fill(encoder, texts)
        total.texts += part.texts
        total.unique += part.unique
        total.hits += part.hits
        total.misses += part.misses
        for name, value in part.stats.items():
            total.stats[name] = total.stats.get(name, 0) + value
    total.seconds = time.perf_counter() - start
    return total
