"""Routing by language: ``mpnet|multilingual`` reads English texts with mpnet and other languages with
multilingual-e5, so one bundle keeps mpnet's English accuracy and still reads Chinese or Spanish.

A :class:`RoutedEncoder` gives a text the vectors of its distinct parts side by side (as ``A+B`` does, each
part cached under its own fingerprint) and one last column, 1.0 when the text reads as English
(:func:`pipeline.encoders.language.english`) and 0.0 when not. English texts get every part (labels train
both sides' heads); a text in another language only the parts its side reads, zeros in the others (mpnet never
reads a Chinese review). :meth:`RoutedEncoder.layout` says which columns each side reads; a routed head
(:mod:`pipeline.heads.routed`) fits one head per side on the same labels and predicts each row with the head
of its side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.encoders.base import Encoder
from pipeline.encoders.concat import ConcatEncoder

ROUTE_VERSION = 2  # the English test and which parts a text gets; bump when either changes


@dataclass(frozen=True)
class Layout:
    """Which columns of a routed encoder's vectors each side reads, and the column of the English flag."""

    english: tuple[int, ...]
    other: tuple[int, ...]
    flag: int

    def to_dict(self) -> dict[str, Any]:
        return {"english": list(self.english), "other": list(self.other), "flag": self.flag}


def layout_of(encoder: Any) -> Layout | None:
    """The :class:`Layout` of a routed encoder's vectors, None for any other encoder (one head for every row)."""
    return encoder.layout() if isinstance(encoder, RoutedEncoder) else None


class RoutedEncoder(ConcatEncoder):
    """The vectors of ``parts`` side by side and the English flag; ``route`` = (the parts English texts
    read, the parts other texts read), as indices into ``parts``."""

    def __init__(self, spec: str, parts: list[Encoder], route: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
        super().__init__(spec, parts)
        self.route = route
        self.dim += 1

    def fingerprint_params(self) -> dict[str, Any]:
        return {**super().fingerprint_params(), "route": [list(side) for side in self.route],
                "route_version": ROUTE_VERSION}

    def describe(self) -> str:
        sides = [" + ".join(self.parts[i].describe() for i in side) for side in self.route]
        return f"English texts: {sides[0]}; other languages: {sides[1]}"

    def layout(self) -> Layout:
        """The columns each side reads (the flag column last)."""
        starts = np.cumsum([0] + [p.dim for p in self.parts])
        cols = [tuple(c for i in side for c in range(int(starts[i]), int(starts[i + 1]))) for side in self.route]
        return Layout(cols[0], cols[1], int(starts[-1]))

    def assemble(self, texts: list[str], vectors: Callable[[Encoder, list[str]], np.ndarray]) -> np.ndarray:
        """The rows of ``texts``, each part's columns from ``vectors(part, its texts)`` (the encoder, or the
        cache): every part for English texts, the other side's parts for the rest, then the English flag."""
        from pipeline.encoders.language import english

        flags = np.asarray(english(texts), dtype=bool)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        start, other = 0, set(self.route[1])
        for i, part in enumerate(self.parts):
            rows = np.arange(len(texts)) if i in other else np.flatnonzero(flags)
            if len(rows):
                out[rows, start:start + part.dim] = vectors(part, [texts[r] for r in rows])
            start += part.dim
        out[:, -1] = flags
        return out

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        def encode(part: Encoder, some: list[str]) -> np.ndarray:
            vectors = part.encode(some, progress=progress if part is self.parts[-1] else None)
            for name, value in part.last_stats.items():
                self.last_stats[name] = self.last_stats.get(name, 0) + value
            return vectors

        return self.assemble(texts, encode)
