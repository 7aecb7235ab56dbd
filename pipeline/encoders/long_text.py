"""Texts longer than a transformer's max length: which word pieces it sees and how windows are pooled.

=============  ===================================================================================
strategy       what the model sees of a text longer than its window of ``W`` word pieces
=============  ===================================================================================
``truncate``   the first ``W`` word pieces (the rest, often the verdict, is dropped)
``head-tail``  the first quarter of ``W`` and the last three quarters (Sun et al., 2019: best of the
               single-window choices for long reviews)
``chunk-mean`` overlapping windows of ``W`` covering the whole text (each starts 3/4 of a window
               after the previous one, the last ends at the text's end); their vectors are averaged,
               weighted by word-piece count, and re-normalised when the model normalises
``auto``       ``chunk-mean``: for texts within the window every strategy gives the same vector, so
               ``auto`` only changes long texts and shares chunk-mean's fingerprint
=============  ===================================================================================

``W`` is the max length minus the model's special tokens ([CLS], [SEP], ...). numpy only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline import OptionError

STRATEGIES = ("auto", "truncate", "head-tail", "chunk-mean")
HEAD_SHARE = 0.25  # head-tail: share of the window taken from the start of the text
STRIDE_SHARE = 0.75  # chunk-mean: a window starts this share of a window after the previous one


def resolve_strategy(name: str) -> str:
    """The strategy ``name`` stands for (``auto`` -> ``chunk-mean``), or ValueError naming the choices."""
    if name not in STRATEGIES:
        raise OptionError(f"unknown long-text strategy {name!r}; use one of {', '.join(STRATEGIES)}.")
    return "chunk-mean" if name == "auto" else name


@dataclass(frozen=True)
class Windowing:
    """How one encoder cuts texts of content word-piece ids into model inputs of at most ``window``."""

    strategy: str  # resolved: truncate, head-tail or chunk-mean
    window: int  # content word pieces per model input (max length minus special tokens)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES[1:]:
            raise ValueError(f"Windowing needs a resolved strategy, got {self.strategy!r}.")
        if self.window < 1:
            raise OptionError(f"the max length leaves {self.window} word pieces for text; raise --max-length.")

    @property
    def head(self) -> int:
        """head-tail: word pieces taken from the start."""
        return max(1, int(self.window * HEAD_SHARE))

    @property
    def stride(self) -> int:
        """chunk-mean: word pieces between the starts of consecutive windows."""
        return max(1, int(self.window * STRIDE_SHARE))

    def params(self) -> dict[str, Any]:
        """What enters the encoder fingerprint."""
        extra = {"head-tail": {"head": self.head}, "chunk-mean": {"stride": self.stride}}.get(self.strategy, {})
        return {"strategy": self.strategy, "window": self.window, **extra}

    def pieces(self, ids: list[int]) -> list[list[int]]:
        """The model inputs (content ids, without special tokens) for one text."""
        n, w = len(ids), self.window
        if n <= w:
            return [ids]
        if self.strategy == "truncate":
            return [ids[:w]]
        if self.strategy == "head-tail":
            return [ids[: self.head] + ids[n - (w - self.head):]]
        starts = list(range(0, n - w, self.stride)) + [n - w]
        return [ids[s : s + w] for s in starts]

    def split(self, ids: list[list[int]]) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
        """All model inputs of all texts, the text each belongs to, and its weight (word-piece count)."""
        pieces: list[list[int]] = []
        owner: list[int] = []
        for i, text_ids in enumerate(ids):
            parts = self.pieces(text_ids)
            pieces += parts
            owner += [i] * len(parts)
        weight = np.fromiter((max(len(p), 1) for p in pieces), dtype=np.float64, count=len(pieces))
        return pieces, np.asarray(owner, dtype=np.int64), weight

    def seen_share(self, counts: np.ndarray) -> np.ndarray:
        """Share of each text's word pieces the model sees (1 for texts within the window)."""
        counts = np.asarray(counts, dtype=np.float64)
        if self.strategy == "chunk-mean":
            return np.ones_like(counts)
        return np.minimum(1.0, self.window / np.maximum(counts, 1.0))


def pool(vectors: np.ndarray, owner: np.ndarray, weight: np.ndarray, n: int, normalize: bool) -> np.ndarray:
    """Weighted mean of the window vectors of each of ``n`` texts (unit length again if ``normalize``)."""
    if len(owner) == n:  # one window per text: nothing to pool
        return vectors
    total = np.zeros((n, vectors.shape[1]), dtype=np.float64)
    np.add.at(total, owner, vectors * weight[:, None])
    total /= np.bincount(owner, weights=weight, minlength=n)[:, None]
    if normalize:
        total /= np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)
    return total.astype(np.float32)


@dataclass(frozen=True)
class Batching:
    """How :func:`encode_windows` cuts model inputs into batches (longest first) and runs them.

    At most ``batch_size`` inputs a batch. With ``width`` (content length -> padded width), a batch holds only
    inputs of one width, and ``forward`` pads it to that width: each input is then computed at a shape its own
    length decides, not the texts encoded with it (see :data:`pipeline.encoders.transformer.WIDTH_STEP`). With
    ``max_tokens``, a batch also stops before its padded size (inputs times the longest) would pass it: long
    inputs go in smaller batches. With ``parallel`` above 1, that many batches run at once on threads
    (``forward`` must then be thread-safe); the batches and so the vectors are the same.
    """

    batch_size: int
    width: Callable[[int], int] | None = None
    max_tokens: int | None = None
    parallel: int = 1


def encode_windows(ids: list[list[int]], windowing: Windowing, dim: int,
                   forward: Callable[[list[list[int]]], np.ndarray], normalize: bool, batching: Batching,
                   progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Vectors of texts given as content ids: cut into model inputs, encoded longest first in batches as
    ``batching`` says, pooled per text.

    ``forward(batch)`` turns a list of model inputs (content ids, without special tokens) into float32
    ``(len(batch), dim)`` vectors; batches of similar length pad little. ``progress(k)`` is called as
    each ``k`` more texts are done.
    """
    pieces, owner, weight = windowing.split(ids)
    left = np.bincount(owner, minlength=len(ids))  # model inputs still to encode, per text
    order = np.argsort(-weight, kind="stable")
    out = np.empty((len(pieces), dim), dtype=np.float32)
    batches = _batches(order, [len(p) for p in pieces], batching.batch_size, batching.width, batching.max_tokens)
    for idx, vectors in _run(batches, lambda idx: forward([pieces[i] for i in idx]), batching.parallel):
        out[idx] = vectors
        if progress is not None:
            before = int((left == 0).sum())
            np.subtract.at(left, owner[idx], 1)
            progress(int((left == 0).sum()) - before)
    return pool(out, owner, weight, len(ids), normalize)


def _run(batches: list[np.ndarray], forward: Callable[[np.ndarray], np.ndarray],
         parallel: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(batch, forward(batch))`` in order, computed ``parallel`` at a time on threads (1: in this thread)."""
    if parallel <= 1 or len(batches) < 2:
        yield from ((idx, forward(idx)) for idx in batches)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(parallel) as pool:
        pending = deque(pool.submit(forward, idx) for idx in batches[:parallel])
        for k, idx in enumerate(batches):
            vectors = pending.popleft().result()
            if k + parallel < len(batches):  # keep ``parallel`` batches in flight, and no more in memory
                pending.append(pool.submit(forward, batches[k + parallel]))
            yield idx, vectors


def _batches(order: np.ndarray, lengths: list[int], batch_size: int,
             width: Callable[[int], int] | None, max_tokens: int | None = None) -> list[np.ndarray]:
    """``order`` cut into batches of at most ``batch_size``; with ``width``, cut where the width changes too;
    with ``max_tokens`` (``order`` longest first), where the batch's padded size would pass it."""
    if max_tokens is not None and width is None:
        batches, start = [], 0
        while start < len(order):
            size = min(batch_size, max(1, max_tokens // max(lengths[order[start]], 1)))
            batches.append(order[start : start + size])
            start += size
        return batches
    if width is None:
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    widths = np.fromiter((width(lengths[i]) for i in order), dtype=np.int64, count=len(order))
    cuts = np.flatnonzero(np.diff(widths)) + 1
    return [group[s : s + batch_size] for group in np.split(order, cuts) for s in range(0, len(group), batch_size)]


def length_stats(texts: Iterable[str], content_ids: Callable[[list[str]], list[list[int]]],
                 windowing: Windowing) -> LengthStats:
    """How many ``texts`` exceed the window and what share of their word pieces is seen.

    ``texts`` may be a lazy iterable (e.g. a streamed file): it is tokenized block by block.
    """
    counts = []
    it = iter(texts)
    while block := list(itertools.islice(it, 4096)):
        counts.append(np.fromiter(map(len, content_ids(block)), dtype=np.int64, count=len(block)))
    return LengthStats.of(np.concatenate(counts) if counts else np.zeros(0, np.int64), windowing)


@dataclass(frozen=True)
class LengthStats:
    """How many texts exceed an encoder's window and how much of them it sees."""

    texts: int
    long: int  # texts longer than the window
    longest: int  # word pieces of the longest text
    window: int
    strategy: str
    seen: float  # mean over all texts of the share of word pieces seen under ``strategy``
    seen_long: float  # the same over the long texts only (1.0 when there are none)
    truncate_seen_long: float  # what truncation would see of the long texts

    @classmethod
    def of(cls, counts: np.ndarray, windowing: Windowing) -> LengthStats:
        """Statistics of texts with ``counts`` content word pieces."""
        counts = np.asarray(counts)
        long = counts > windowing.window
        share = windowing.seen_share(counts)
        cut = Windowing("truncate", windowing.window).seen_share(counts)
        return cls(
            texts=len(counts), long=int(long.sum()), longest=int(counts.max(initial=0)), window=windowing.window,
            strategy=windowing.strategy, seen=float(share.mean()) if len(counts) else 1.0,
            seen_long=float(share[long].mean()) if long.any() else 1.0,
            truncate_seen_long=float(cut[long].mean()) if long.any() else 1.0,
        )

    @classmethod
    def combined(cls, parts: Iterable[LengthStats]) -> LengthStats:
        """The statistics of the texts of every one of ``parts`` (one encoder's, e.g. batch by batch), as
        :meth:`of` gives for all their counts at once."""
        parts = list(parts)
        texts, long = sum(p.texts for p in parts), sum(p.long for p in parts)
        return cls(
            texts=texts, long=long, longest=max(p.longest for p in parts), window=parts[0].window,
            strategy=parts[0].strategy, seen=sum(p.seen * p.texts for p in parts) / texts if texts else 1.0,
            seen_long=sum(p.seen_long * p.long for p in parts) / long if long else 1.0,
            truncate_seen_long=sum(p.truncate_seen_long * p.long for p in parts) / long if long else 1.0,
        )

    def line(self) -> str:
        """One line for people."""
        head = (f"long texts: {self.long:,} of {self.texts:,} exceed the window of {self.window} word pieces "
                f"(longest {self.longest:,})")
        if not self.long:
            return head + "; every text is seen whole"
        line = f"{head}; {self.strategy} sees {self.seen:.1%} of word pieces on average ({self.seen_long:.1%} of long texts)"
        if self.strategy != "chunk-mean":
            line += "; --long chunk-mean would see them whole"
        elif self.truncate_seen_long < 1:
            line += f"; truncation would see {self.truncate_seen_long:.1%} of long texts"
        return line
