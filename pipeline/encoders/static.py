"""Static word-vector encoders: a text's vector is a weighted mean of its words' unit-length vectors.

Texts are split as GloVe's corpus was (Penn Treebank style: "don't" -> "do", "n't"; punctuation
kept as tokens), so negations and "!" reach the vectors. Each word vector is scaled to unit length
before pooling: a vector's norm mostly tracks its word's frequency, not its meaning. Pooling ``tfidf``
(the default) weighs a token by its inverse frequency ``-log p(w)``, ``mean`` weighs every token alike,
``sif`` by ``a / (a + p(w))`` and then removes the common component (Arora et al. 2017).
``p(w)`` is the word's unigram probability: from counts when the vectors come with them
(``w2v-train``), else from its frequency rank by Zipf's law (GloVe and word2vec files are sorted
by frequency). The common component is fixed per vector set (the direction of the expected
SIF-weighted word vector), so a text's vector never depends on the other texts encoded with it,
which the cache relies on.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import MissingExtraError, OptionError
from pipeline.encoders.base import Encoder, ZeroVectorWarning, zero_rows_message

POOLINGS = ("tfidf", "mean", "sif")
SIF_A = 1e-3
# "n't" and clitics ("'s", "'re") split off as in the Penn Treebank; runs of letters and digits; any
# other non-space character (punctuation) alone. Underscores are dropped.
TOKEN_RE = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|[^\W_]+(?=n't)|[^\W_]+|[^\w\s]")
TOKENIZER = "lower+ptb-regex:" + TOKEN_RE.pattern
WORD_NORM = "unit"


def tokenize(text: str) -> list[str]:
    """Lower-cased Penn-Treebank-style tokens: "Don't stop!" -> ["do", "n't", "stop", "!"]."""
    return TOKEN_RE.findall(text.lower().replace("\u2019", "'"))


@dataclass(frozen=True)
class WordVectors:
    """A vocabulary with its vectors and unigram probabilities; ``digest`` identifies the content."""

    words: list[str]
    vectors: np.ndarray  # (V, d) float32, may be a read-only memory map
    probs: np.ndarray  # (V,) float64, sums to 1
    digest: str
    file: Path | None = field(default=None, compare=False)  # the saved trained vectors, which bundles copy

    @staticmethod
    def zipf_probs(n_words: int) -> np.ndarray:
        """Unigram probabilities of a frequency-sorted vocabulary by Zipf's law, p(rank r) ~ 1/r."""
        inv = 1.0 / np.arange(1, n_words + 1, dtype=np.float64)
        return inv / inv.sum()


class StaticEncoder(Encoder):
    """Pools word vectors over the tokens of each text; reports the out-of-vocabulary (OOV) rate."""

    def __init__(self, spec: str, vectors: WordVectors, pooling: str | None = None) -> None:
        super().__init__(spec)
        pooling = pooling or POOLINGS[0]
        if pooling not in POOLINGS:
            raise OptionError(f"{spec}: unknown pooling {pooling!r} for word vectors; use one of {', '.join(POOLINGS)}.")
        self.pooling = pooling
        self.vectors = vectors
        self.dim = int(vectors.vectors.shape[1])
        self._index = _word_index(vectors)
        self._weights = _token_weights(pooling, vectors.probs)
        self._common = _common_component(vectors) if pooling == "sif" else None

    def fingerprint_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"vectors": self.vectors.digest, "pooling": self.pooling, "tokenizer": TOKENIZER,
                                  "word_norm": WORD_NORM}
        if self.pooling == "sif":
            params["sif_a"] = SIF_A
        return params

    def describe(self) -> str:
        return f"{self.spec} ({self.dim}-d word vectors, {len(self.vectors.words):,} words, {self.pooling} pooling)"

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        rows: list[int] = []
        cols: list[int] = []
        n_tokens = n_oov = 0
        index = self._index
        for i, text in enumerate(texts):
            tokens = tokenize(text)
            n_tokens += len(tokens)
            for tok in tokens:
                j = index.get(tok)
                if j is None:
                    n_oov += 1
                else:
                    rows.append(i)
                    cols.append(j)
        n = len(texts)
        row_arr, col_arr = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        weights = self._weights[col_arr]
        counts = np.bincount(row_arr, minlength=n)
        totals = np.bincount(row_arr, weights=weights, minlength=n)
        out = np.zeros((n, self.dim), dtype=np.float64)
        empty = counts == 0
        if len(col_arr):
            # gather only the rows needed (a memory map reads just those pages), then sum per text
            weighted = _unit_rows(self.vectors.vectors[col_arr]) * weights[:, None]
            starts = (np.cumsum(counts) - counts)[~empty]
            out[~empty] = np.add.reduceat(weighted, starts, axis=0) / totals[~empty, None]
        if self._common is not None:
            out -= np.outer(out @ self._common, self._common)
        self.last_stats = {"tokens": n_tokens, "oov_tokens": n_oov, "empty_rows": int(empty.sum())}
        if empty.any():
            zero = np.flatnonzero(empty)
            message = zero_rows_message(self.spec, (zero + 1).tolist(), len(texts), "texts")
            warnings.warn(ZeroVectorWarning(message, zero.tolist()), stacklevel=3)
        if progress is not None:
            progress(len(texts))
        return out.astype(np.float32)

    @property
    def oov_rate(self) -> float | None:
        """Share of tokens of the latest encode that are not in the vocabulary (None before any)."""
        tokens = self.last_stats.get("tokens")
        return None if not tokens else self.last_stats["oov_tokens"] / tokens


_INDEXES: dict[tuple[str, int], dict[str, int]] = {}  # (digest, words) -> word index: built once per process
_MAX_INDEXES = 4


def _word_index(vectors: WordVectors) -> dict[str, int]:
    """The word index of ``vectors``, shared by every encoder of the same content (``digest``) in this
    process: GloVe's 400k words took 0.2 s to index on each load. Encoders only read it."""
    key = (vectors.digest, len(vectors.words))
    index = _INDEXES.get(key)
    if index is None:
        index = _lowercase_index(vectors.words)
        if len(_INDEXES) >= _MAX_INDEXES:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[key] = index
    return index


def _lowercase_index(words: list[str]) -> dict[str, int]:
    """Word -> row; a cased vocabulary maps each lower-cased form to its most frequent spelling."""
    index = dict(zip(words, range(len(words))))
    joined = "\0".join(words)
    if len(index) == len(words) and joined == joined.lower():
        return index  # lower-case words, none repeated (GloVe): nothing to merge, and 4x faster than the loop
    index = {}
    for i, word in enumerate(words):
        lower = word.lower()
        index.setdefault(word if lower == word else lower, i)  # share the str when already lower-case
    return index


def _token_weights(pooling: str, probs: np.ndarray) -> np.ndarray:
    if pooling == "mean":
        return np.ones(len(probs), dtype=np.float64)
    if pooling == "tfidf":
        return -np.log(probs)
    return SIF_A / (SIF_A + probs)


def _common_component(vectors: WordVectors) -> np.ndarray:
    """Unit direction of the expected SIF-weighted unit word vector, E_p[a/(a+p(w)) v_w/|v_w|]."""
    w = vectors.probs * (SIF_A / (SIF_A + vectors.probs))
    u = np.zeros(vectors.vectors.shape[1], dtype=np.float64)
    block = 65536  # bounded memory over a memory-mapped matrix
    for start in range(0, len(w), block):
        u += w[start : start + block] @ _unit_rows(vectors.vectors[start : start + block])
    return u / max(np.linalg.norm(u), 1e-12)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as float64 rows of length 1 (all-zero rows stay zero)."""
    out = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


class WordLlamaEncoder(Encoder):
    """WordLlama static token embeddings (256-d, average pooled); optional extra ``wordllama``."""

    def __init__(self, spec: str, pooling: str | None = None) -> None:
        super().__init__(spec)
        if pooling not in (None, "mean"):
            raise OptionError(f"{spec}: WordLlama pools by mean only; drop --pooling {pooling}.")
        try:
            import wordllama
            from wordllama import WordLlama
        except ImportError:
            raise MissingExtraError(
                "the 'wordllama' encoder needs the wordllama package: pip install 'review-transfer[wordllama]'"
            ) from None
        from importlib.metadata import version
        from pathlib import Path

        self._version = version("wordllama")
        self._model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
        self.dim = int(self._model.embed(["probe"]).shape[1])

    def fingerprint_params(self) -> dict[str, Any]:
        return {"model": f"wordllama=={self._version}", "pooling": "mean", "normalize": False}

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        out = np.asarray(self._model.embed(texts, norm=False), dtype=np.float32)
        if progress is not None:
            progress(len(texts))
        return out
