"""Several encoders side by side: ``minilm+w2v-train:rt`` gives each text MiniLM's 384 numbers
followed by in-domain Word2Vec's 100.

A general sentence encoder and word vectors trained on the user's own unlabelled reviews know
different things; a head on both beats either alone. The cache stores each part under its own
fingerprint (a combination has no store of its own), so combining encoders already cached costs
no encoding. Specs are split and parsed in :mod:`pipeline.encoders.spec`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.encoders.base import Encoder


class ConcatEncoder(Encoder):
    """The vectors of ``parts``, concatenated in order."""

    def __init__(self, spec: str, parts: list[Encoder]) -> None:
        super().__init__(spec)
        self.parts = parts
        self.dim = sum(p.dim for p in parts)

    def fingerprint_params(self) -> dict[str, Any]:
        return {"parts": [p.fingerprint for p in self.parts]}

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts) + f" ({self.dim}-d together)"

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        for part in self.parts:  # their sessions load side by side
            part.preload(len(texts))
        out = []
        for i, part in enumerate(self.parts):
            out.append(part.encode(texts, progress=progress if i == len(self.parts) - 1 else None))
            for name, value in part.last_stats.items():
                self.last_stats[name] = self.last_stats.get(name, 0) + value
        return np.hstack(out)
