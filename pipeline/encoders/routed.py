"""Routing by language: ``mpnet|multilingual`` reads English texts with mpnet and other languages with
multilingual-e5, so one bundle keeps mpnet's English accuracy and still reads Chinese or Spanish.

A :class:`RoutedEncoder` gives every text the vectors of all its distinct parts side by side (as ``A+B``
does, each part cached under its own fingerprint) and one last column, 1.0 when the text reads as
English (:func:`pipeline.encoders.language.english`) and 0.0 when not. :meth:`RoutedEncoder.layout` says
which columns each side reads; a routed head (:mod:`pipeline.heads.routed`) fits one head per side on
the same labels and predicts each row with the head of its side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.encoders.base import Encoder
from pipeline.encoders.concat import ConcatEncoder

ROUTE_VERSION = 1  # the English test of pipeline.encoders.language; bump when it changes


@dataclass(frozen=True)
class Layout:
    """Which columns of a routed encoder's vectors each side reads, and the column of the English flag."""

    english: tuple[int, ...]
    other: tuple[int, ...]
    flag: int

    def to_dict(self) -> dict[str, Any]:
        return {"english": list(self.english), "other": list(self.other), "flag": self.flag}


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

    @staticmethod
    def flags(texts: list[str]) -> np.ndarray:
        """The last column: 1.0 for texts that read as English, else 0.0."""
        from pipeline.encoders.language import english

        return np.asarray(english(texts), dtype=np.float32)[:, None]

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        return np.hstack([super()._encode(texts, progress), self.flags(texts)])
