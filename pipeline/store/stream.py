"""Read the texts of a large file in bounded batches, never the whole corpus at once.

Parquet, CSV/TSV and JSONL files are read by :mod:`pipeline.data.readers` (the reader every command uses,
so the checks and messages are the same), ``batch_rows`` rows at a time. Texts are stripped and empty
ones dropped, as :func:`pipeline.data.dataset.load` does; duplicates are left to the cache (a repeat is a cache
hit). Other sources (``rt``, ``hf:``, ``.json``) are not streamable: :func:`streamable` says which are.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.store.cache import EmbedReport
from pipeline.data.readers import BATCH_ROWS, STREAM_FORMATS, read_texts

if TYPE_CHECKING:
    from pipeline.store.cache import EmbeddingCache
    from pipeline.encoders.base import Encoder


def streamable(source: str) -> bool:
    """Whether ``source`` is a file :func:`iter_text_batches` can read in batches."""
    return Path(source).suffix.lower() in STREAM_FORMATS and Path(source).is_file()


def iter_text_batches(source: str | Path, *, text_col: str = "text", batch_rows: int = BATCH_ROWS) -> Iterator[list[str]]:
    """Stripped, non-empty texts of column ``text_col`` of ``source``, about ``batch_rows`` rows at a time.

    Raises :class:`~pipeline.data.readers.DataError` naming the file, the line or row and the column, as
    every other command does for the same file.
    """
    return read_texts(source, text_col, keep_empty=False, batch_rows=batch_rows)


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
        total.reused += part.reused
        total.zero_rows += part.zero_rows
        for name, value in part.stats.items():
            total.stats[name] = total.stats.get(name, 0) + value
    total.seconds = time.perf_counter() - start
    return total
