"""The encoder contract, its fingerprint, input checks and content hashes of weight files."""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

# Bump when a change to this package changes the vectors an encoder returns: every cache is rebuilt.
ENCODER_CODE_VERSION = 1
# Files in a model directory that never change its output.
IGNORED_FILES = {"README.md", ".gitattributes", "desktop.ini", ".DS_Store"}


class ZeroVectorWarning(UserWarning):
    """Some texts had nothing the encoder could represent (no known word) and got zero vectors.

    ``rows`` holds their 0-based positions in the texts encoded, when known, so a caller that dropped
    rows first (e.g. empty texts) can name the input rows instead."""

    def __init__(self, message: str, rows: list[int] | None = None) -> None:
        super().__init__(message)
        self.rows = list(rows or [])


def zero_rows_message(spec: str, rows: list[int], total: int, what: str) -> str:
    """The line of a :class:`ZeroVectorWarning`: how many of ``total`` texts got zero vectors, naming
    the first few of ``rows`` (1-based positions, ``what`` says of what: "texts", "input rows")."""
    first = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
    return (f"{spec}: {len(rows)} of {total} texts have no word the encoder knows ({what} {first}); their "
            "vectors are zero, so a model gives them all the same probability.")


class Encoder(ABC):
    """Turns texts into float32 vectors.

    ``spec`` is the string the user typed, ``dim`` the vector size and ``fingerprint`` a short hash of
    everything that changes the vectors (see :meth:`fingerprint_params`). ``last_stats`` holds counters
    of the latest :meth:`encode` call (e.g. ``tokens``/``oov_tokens`` or ``truncated``).
    Encoders never know about the cache.
    """

    spec: str
    dim: int

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.last_stats: dict[str, int] = {}

    @abstractmethod
    def fingerprint_params(self) -> dict[str, Any]:
        """JSON-able description of everything that changes the output (weights hash, pooling, ...)."""

    @abstractmethod
    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        """Encode a non-empty list of checked strings into a float32 ``(n, dim)`` array.

        ``progress(k)``, when given, is called as each ``k`` more texts are done (``k`` summing to n).
        """

    @cached_property
    def fingerprint(self) -> str:
        """First 16 hex characters of the sha256 of :meth:`fingerprint_params`."""
        return params_fingerprint(self.full_params())

    def full_params(self) -> dict[str, Any]:
        """:meth:`fingerprint_params` plus the encoder class, its code version and ``dim``."""
        return {
            "class": type(self).__name__,
            "code_version": ENCODER_CODE_VERSION,
            "dim": self.dim,
            **self.fingerprint_params(),
        }

    def encode(self, texts: Iterable[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Vectors of ``texts`` as float32 ``(n, dim)``; ``(0, dim)`` for no texts.

        ``progress(k)`` is called as each ``k`` more texts are encoded (e.g. a tqdm bar's ``update``).
        """
        texts = check_texts(texts)
        self.last_stats = {}
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.ascontiguousarray(self._encode(texts, progress), dtype=np.float32)
        if out.shape != (len(texts), self.dim):
            raise RuntimeError(f"{self.spec}: encoder returned shape {out.shape}, expected {(len(texts), self.dim)}.")
        return out

    def preload(self, count: int = 1) -> None:
        """Start loading, in the background, what an :meth:`encode` of ``count`` texts will need, where that
        helps (an exported model's runtime session); nothing by default."""

    def describe(self) -> str:
        """One line for people: spec, dim and the settings that matter."""
        return f"{self.spec} ({self.dim}-d, fingerprint {self.fingerprint})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def params_fingerprint(params: dict[str, Any]) -> str:
    """First 16 hex characters of sha256 over the sorted-key JSON of ``params``."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def check_texts(texts: Iterable[str]) -> list[str]:
    """``texts`` as a list of str, or TypeError naming the first row that is not a str."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"expected a list of texts, got a single {type(texts).__name__}; wrap it in a list.")
    if hasattr(texts, "ndim") and getattr(texts, "ndim") != 1:
        raise TypeError(f"expected a 1-d sequence of texts, got an array of shape {getattr(texts, 'shape', '?')}.")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__} ({text!r:.40}); expected str.")
    return out


_DIGESTS: dict[tuple[str, int, int], str] = {}


def layer_span(layers: str) -> tuple[int, int]:
    """``(A, B)`` of a ``layers`` option ``"A-B"`` (or ``"A"``), as the spec's option table checked it."""
    first, _, last = layers.partition("-")
    return int(first), int(last or first)


def file_stamp(path: str | Path) -> tuple[int, int, int, int]:
    """What tells that a file's content may have changed, without reading it: size, modification and change times,
    inode. A file rewritten or replaced, even with its size and mtime put back, gets a new change time or inode."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def file_digest(path: str | Path) -> str:
    """sha256 hex of a file's content, remembered per path and :func:`file_stamp` within the process."""
    real = os.path.realpath(path)
    key = (real, *file_stamp(real))
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(real)
    return _DIGESTS[key]


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (``hashlib.file_digest`` needs Python 3.11)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dir_digest(path: str | Path) -> str:
    """sha256 over the relative names and content hashes of every file under ``path``.

    Documentation files (:data:`IGNORED_FILES`) and hidden folders are left out: they never change
    the vectors, while weights, tokenizer and pooling configs do.
    """
    root = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root)
        if file.name in IGNORED_FILES or any(part.startswith(".") for part in rel.parts):
            continue
        h.update(f"{rel.as_posix()}\0{file_digest(file)}\n".encode())
    return h.hexdigest()
