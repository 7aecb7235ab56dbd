"""``embed``: every text of a source (and of any ``--unlabelled`` sources) into the store, once per encoder.

:func:`embed_source` does the whole command for one :class:`EmbedJob` and yields the lines it prints. A
source that can be streamed (a .parquet/.csv/.tsv/.jsonl file) is read in batches, never whole: its first
texts for the accuracy probe, then once per encoder (the fill, with the long-text count on the same pass);
any other source (``rt``, ``hf:``, .json) is read once and its texts kept.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.data.readers import DataError, DataWarning, check_source
from pipeline.encoders.probe import MIN_MEDIAN_COSINE
from pipeline.encoders.spec import EncoderOptions, single_parts, split_spec
from pipeline.store.ray_fill import SHARD_SIZE

PROBE_TEXTS = 20_000  # texts the accuracy guard of exported backends samples (and backend auto is chosen on)


@dataclass(frozen=True)
class EmbedRun:
    """Where ``embed`` encodes: ``device`` and ``batch_size`` of the encoders, ``chunk_size`` texts committed
    to the store at a time; ``engine`` local or ray (``address``, ``workers`` actors, ``shard_size`` texts per task)."""

    device: str = "auto"
    batch_size: int | None = None
    chunk_size: int = 1024
    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    shard_size: int = SHARD_SIZE


@dataclass(frozen=True)
class EmbedJob:
    """What ``embed`` does: the texts of ``source`` (read with ``source_options``) and of the ``unlabelled``
    sources, encoded by each of ``encoders`` (with their flags and cache directory), a transformer under
    ``backend``/``quantize`` (None: auto) guarded at ``min_cosine``, as ``run`` says."""

    source: str
    encoders: EncoderOptions
    backend: str | None = None
    quantize: str | None = None
    min_cosine: float = MIN_MEDIAN_COSINE
    unlabelled: tuple[str, ...] = ()
    source_options: dict[str, Any] = field(default_factory=dict)
    run: EmbedRun = EmbedRun()


def embed_source(job: EmbedJob) -> Iterator[tuple[str, bool]]:
    """Embed ``job``, yielding each line it prints as ``(line, to_stderr)``: per encoder, how it runs, then the
    store's summary and, for transformers, how many texts exceed the window. ``A+B`` is cached as A and as B.
    Every spec and source is checked before any model loads."""
    from pipeline.encoders.base import ZeroVectorWarning
    from pipeline.encoders.routed import MIN_ENGLISH, MIN_ENGLISH_SHARE
    from pipeline.store.cache import EmbeddingCache

    parsed = [(piece, spec) for raw in job.encoders.specs for piece in split_spec(raw)
              for spec in replace(job.encoders, specs=(piece,)).parsed()]
    specs = [(piece, part) for piece, spec in parsed for part in single_parts([spec])]
    specs = list({str(spec): (piece, spec) for piece, spec in specs}.values())
    for path in (job.source, *job.unlabelled):  # a missing file fails before any model loads
        check_source(path)
    texts = _Texts(job, wants_probe=job.backend != "torch" and any(spec.has_exports for _, spec in specs))
    unread = _unread_parts([spec for _, spec in parsed], texts)
    if unread:
        yield (f"too few of the first texts read as English (under {MIN_ENGLISH} and under {MIN_ENGLISH_SHARE:.0%}): "
               f"{', '.join(sorted(unread))} (a routed encoder's English side) is not run; fit reads them with its "
               "other side alone"), True
        specs = [(piece, spec) for piece, spec in specs if str(spec) not in unread]
    cache = EmbeddingCache(job.encoders.cache_dir, chunk_size=job.run.chunk_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroVectorWarning)  # the summary counts texts with no known word
        for piece, spec in specs:
            yield from _embed_one(job, piece, spec, texts, cache)


def _unread_parts(parsed: list[Any], texts: _Texts) -> set[str]:
    """The parts that only a routed spec's English side reads, when too few of the source's first texts read as
    English (:func:`pipeline.encoders.routed.unread_parts`) and no other of the ``parsed`` specs needs them."""
    from pipeline.encoders.language import SAMPLE
    from pipeline.encoders.routed import unread_parts

    if not any(spec.route for spec in parsed):
        return set()
    first = texts.first(SAMPLE)
    skip = [unread_parts(spec, first) for spec in parsed]
    needed = {str(part) for spec, unread in zip(parsed, skip) for i, part in enumerate(spec.parts or (spec,))
              if i not in unread}
    return {str(spec.parts[i]) for spec, unread in zip(parsed, skip) for i in unread} - needed


def _embed_one(job: EmbedJob, piece: str, spec: Any, texts: _Texts, cache: Any) -> Iterator[tuple[str, bool]]:
    """The lines of one encoder: chosen and guarded (local engine, or an exported backend), filled, counted."""
    from pipeline.encoders.auto import chooses_backend, command_encoder
    from pipeline.store.stream import fill_stream

    run = job.run
    settings = {"device": run.device, "batch_size": run.batch_size, "source_options": job.source_options}
    chosen: dict[str, Any] = {}
    if run.engine == "local" or chooses_backend(piece, job.backend, job.quantize):
        enc, lines = command_encoder(piece, spec, texts.probe(), {**settings, "work_dir": cache.dir},
                                     backend=job.backend, quantize=job.quantize, min_median=job.min_cosine)
        yield from ((line, True) for line in lines)
        chosen = {"backend": getattr(enc, "backend", "torch"), "quantize": getattr(enc, "quantize", "none")}
    if run.engine == "ray":
        from pipeline.store.ray_fill import Cluster, ray_fill

        report = ray_fill(str(spec), texts.batches(), cache.dir, options={**settings, **chosen},
                          cluster=Cluster(address=run.address, workers=run.workers, shard_size=run.shard_size))
    else:
        from pipeline.encoders.language import SAMPLE, warn as warn_language

        yield enc.describe(), True
        warn_language(enc, texts.first(SAMPLE))
        lengths = _Lengths(enc)  # counted on the fill's pass, so a streamed file is read once here
        report = fill_stream(cache, enc, lengths.count(texts.batches()))
        report.seconds -= lengths.seconds  # the rate is the fill's own, as without the count
    if not report.texts:
        raise DataError(_no_texts(job.source, job.source_options["text_col"]))
    yield report.summary(), False
    if run.engine == "local" and lengths.parts:
        from pipeline.encoders.long_text import LengthStats

        yield "  " + LengthStats.combined(lengths.parts).line(), False


class _Lengths:
    """How many texts exceed an encoder's window (transformers only), counted batch by batch as they pass."""

    def __init__(self, encoder: Any) -> None:
        self.encoder, self.parts, self.seconds = encoder, [], 0.0

    def count(self, batches: Iterable[list[str]]) -> Iterator[list[str]]:
        for batch in batches:
            yield batch
            if hasattr(self.encoder, "length_stats"):
                start = time.perf_counter()
                self.parts.append(self.encoder.length_stats(batch))
                self.seconds += time.perf_counter() - start


class _Texts:
    """The texts of a job's sources as batches: streamed files re-read per pass, other sources read once."""

    def __init__(self, job: EmbedJob, *, wants_probe: bool) -> None:
        text_col = job.source_options["text_col"]
        self._parts: list[Callable[[], Iterable[list[str]]]] = [
            _batches(job.source, job.source_options, True),
            *(_batches(u, {"text_col": text_col}, False) for u in job.unlabelled)]
        self._probe: list[str] | None = None
        self._wants_probe = wants_probe

    def batches(self) -> Iterator[list[str]]:
        return itertools.chain.from_iterable(part() for part in self._parts)

    def probe(self) -> list[str]:
        """The first :data:`PROBE_TEXTS` texts when an exported backend may be guarded on them, else none."""
        if self._probe is None:
            self._probe = self.first(PROBE_TEXTS) if self._wants_probe else []
        return self._probe

    def first(self, n: int) -> list[str]:
        """Up to ``n`` texts from the start, read quietly: the fill pass that follows reads the same rows again
        and gives the reader's warnings once. Taken from the probe texts when they were read."""
        if self._probe:  # the first PROBE_TEXTS texts, more than any sample taken here
            return self._probe[:n]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            return list(itertools.islice(itertools.chain.from_iterable(self.batches()), n))


def _batches(source: str, opts: dict[str, Any], labelled_source: bool) -> Callable[[], Iterable[list[str]]]:
    """A function giving the batches of texts of ``source``: streamed from a file where possible (anew on each
    call), else read once, whole (only the text column of an unlabelled source)."""
    from pipeline.store.stream import iter_text_batches, streamable

    if streamable(source):
        return lambda: iter_text_batches(source, text_col=opts["text_col"])
    held: list[list[str]] = []

    def once() -> list[list[str]]:
        if not held:
            if labelled_source:
                from pipeline.data.dataset import load

                held.append(load(source, require_labels=False, **opts).texts)
            else:
                from pipeline.data.unlabelled import read_unlabelled

                held.extend(read_unlabelled([source], text_col=opts["text_col"]).values())
        return held

    return once


def _no_texts(source: str, text_col: str) -> str:
    """Why ``embed`` found nothing to encode, in the words the other commands use for the same file."""
    from pipeline.data.dataset import read_texts

    rows = read_texts(source, text_col)  # raises "no rows found" for an empty file, as load does
    return f"{source}: all {len(rows)} texts in column {text_col!r} are empty or missing."
