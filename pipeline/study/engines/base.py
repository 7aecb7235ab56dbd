"""What compare hands an engine: :class:`Cell` (one frozen cell) and the :class:`Engine` interface."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from pipeline.study.engines.cells import CellOptions


@dataclass(frozen=True)
class Cell:
    """One frozen cell: a head of ``method`` fitted on ``X``/``y`` (one budget sample) and scored on ``tests``.

    ``X`` and the X of ``tests`` are what :meth:`Engine.rows` returned for their texts: vectors, or
    cache keys for an engine that reads vectors where the cell runs. ``options`` say how it is fitted and
    scored (:class:`pipeline.study.engines.cells.CellOptions`: adapt_prior, shift, self-training vectors).
    """

    method: Any  # pipeline.study.engines.cells.Method
    budget: int | None
    seed: int
    X: np.ndarray
    y: np.ndarray
    groups: list[str] | None
    tests: dict[str, tuple[np.ndarray, np.ndarray]]
    folds: Any = None
    options: CellOptions = CellOptions()

    def fit(self, X: np.ndarray | None = None, tests: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
            ) -> dict[str, Any]:
        """The cell's result row, fitted on ``X``/``tests`` when given (vectors read for its keys), else its own."""
        from pipeline.study.engines.cells import fit_frozen_cell

        return fit_frozen_cell(replace(self, X=self.X if X is None else X, tests=self.tests if tests is None else tests))


class Engine(Protocol):
    """What compare hands its frozen cells to."""

    name: str

    def rows(self, encoder: Any, texts: list[str]) -> np.ndarray:
        """Encode what the cache lacks of ``texts``; return what cells carry as X for them, in order."""
        ...

    def run(self, encoder: Any, cells: Iterable[Cell]) -> Iterator[dict[str, Any]]:
        """The result row of each cell of ``encoder``, in the order they finish."""
        ...
