"""The local engine: vectors from this process's cache, cells fitted in joblib worker processes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.study.engines.base import Cell
from pipeline.study.engines.cells import fit_frozen_cell


class LocalEngine:
    """Cells carry their vectors; ``jobs`` joblib processes fit them (-1: all cores)."""

    name = "local"

    def __init__(self, cache_dir: str | Path, *, jobs: int = 1, progress: bool | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.jobs = jobs
        self.progress = progress

    def rows(self, encoder: Any, texts: list[str]) -> np.ndarray:
        """The vectors of ``texts``, encoding only what the cache lacks."""
        from pipeline.store.cache import EmbeddingCache

        return EmbeddingCache(self.cache_dir, progress=self.progress).vectors(encoder, texts)

    def run(self, encoder: Any, cells: Iterable[Cell]) -> Iterator[dict[str, Any]]:
        """Result rows of ``cells``, as the workers finish them."""
        from joblib import Parallel, delayed

        return Parallel(n_jobs=self.jobs, return_as="generator_unordered")(delayed(fit_frozen_cell)(cell) for cell in cells)
