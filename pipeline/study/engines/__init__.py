"""Engines: where compare's frozen cells run. ``compare`` plans the cells; an engine makes the cache
hold the vectors, then fits and scores cells (:func:`pipeline.study.engines.cells.fit_frozen_cell`) and yields their
rows as they finish. Engines know nothing of ``compare`` (it sits above them).

- ``local`` (:mod:`pipeline.study.engines.local`): this process's cache, cells in joblib workers.
- ``ray`` (:mod:`pipeline.study.engines.ray`): misses encoded by Ray actors, cells as Ray tasks reading
  their rows from the shared cache.

May import: the package root, ``encoders``, ``store``, ``heads``, ``predict``, ``unlabelled``; never
``study`` above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import OptionError
from pipeline.study.engines.base import Cell, Engine

__all__ = ["ENGINES", "Cell", "Engine", "get_engine"]

ENGINES = ("local", "ray")


def get_engine(name: str, cache_dir: str | Path, *, jobs: int = 1, address: str | None = None,
               progress: bool | None = None, source_options: dict[str, Any] | None = None) -> Engine:
    """The engine called ``name`` (see :data:`ENGINES`); ``ray`` fails here, before any work, when Ray is missing."""
    if name == "local":
        from pipeline.study.engines.local import LocalEngine

        return LocalEngine(cache_dir, jobs=jobs, progress=progress)
    if name == "ray":
        from pipeline.study.engines.ray import RayEngine

        return RayEngine(cache_dir, address=address, progress=progress, source_options=source_options)
    raise OptionError(f"--engine {name!r}: unknown; use one of {', '.join(ENGINES)}.")
