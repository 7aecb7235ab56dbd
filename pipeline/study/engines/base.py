"""What compare hands an engine: :class:`Cell` (one frozen cell: its :class:`Method`, sample, tests and
:class:`CellOptions`) and the :class:`Engine` interface. Types only: :mod:`pipeline.study.engines.cells` fits
and scores a cell."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Method:
    """A frozen encoder + scikit-learn head, or an encoder + fine-tuning recipe."""

    encoder: str
    head: str
    finetune: bool = False
    self_train: bool = False  # frozen: a self-trained head; fine-tuned: distilled into a fine-tuned student
    self_train_tag: str = ""  # non-default self-training settings, e.g. "[threshold=0.8]"

    @property
    def name(self) -> str:
        suffix = f"+self-train{self.self_train_tag}" if self.self_train else ""
        return f"{self.encoder}+{'finetune-' if self.finetune else ''}{self.head}{suffix}"


@dataclass(frozen=True)
class CellOptions:
    """How a frozen cell is fitted and scored besides its head and sample (see :func:`pipeline.study.engines.cells.fit_frozen_cell`)."""

    adapt_prior: bool = False
    class_weight: str | None = None
    X_unlabelled: np.ndarray | None = None
    self_train: Any = None
    shift: dict[str, dict[str, Any]] | None = None
    search: bool = True
    prompt_direction: np.ndarray | None = None
    out_of_core: dict[str, Any] | None = None  # sgd's whole-pool cell chunk by chunk (OutOfCore.record())
    layout: Any = None  # a routed encoder's Layout: a head per language side (pipeline.heads.routed)


@dataclass(frozen=True)
class Cell:
    """One frozen cell: a head of ``method`` fitted on ``X``/``y`` (one budget sample) and scored on ``tests``.

    ``X`` and the X of ``tests`` are what :meth:`Engine.rows` returned for their texts: vectors, or
    cache keys for an engine that reads vectors where the cell runs. ``options`` say how it is fitted and
    scored (:class:`CellOptions`: adapt_prior, shift, self-training vectors).
    """

    method: Method
    budget: int | None
    seed: int
    X: np.ndarray
    y: np.ndarray
    groups: list[str] | None
    tests: dict[str, tuple[np.ndarray, np.ndarray]]
    folds: Any = None
    options: CellOptions = CellOptions()


class Engine(Protocol):
    """What compare hands its frozen cells to."""

    name: str

    def rows(self, encoder: Any, texts: list[str]) -> np.ndarray:
        """Encode what the cache lacks of ``texts``; return what cells carry as X for them, in order."""
        ...

    def run(self, encoder: Any, cells: Iterable[Cell]) -> Iterator[dict[str, Any]]:
        """The result row of each cell of ``encoder``, in the order they finish."""
        ...
