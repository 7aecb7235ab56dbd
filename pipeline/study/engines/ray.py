"""The Ray engine of compare (:class:`RayEngine`): cache misses encoded on a Ray cluster by
:func:`pipeline.store.ray_fill.ray_fill`, cells run as Ray tasks that read their rows from the shared cache.

The cache directory must be on a filesystem every node sees. Ray is an optional extra
(``pip install 'review-transfer[ray]'``), imported only inside functions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import EngineError
from pipeline.store.cache import Store, text_keys
from pipeline.store.ray_fill import MAX_RETRIES, Cluster, connect, ray_fill, require_ray
from pipeline.study.engines.base import Cell


# ---------------------------------------------------------------------------------------------- compare cells
class RayEngine:
    """The Ray engine of compare: misses encoded by :func:`ray_fill` (a combined encoder part by part);
    cells carry cache keys and run as Ray tasks (one CPU each) that read their rows from the shared cache."""

    name = "ray"

    def __init__(self, cache_dir: str | Path, *, address: str | None = None, progress: bool | None = None,
                 source_options: dict[str, Any] | None = None, max_retries: int = MAX_RETRIES) -> None:
        require_ray()  # a missing extra fails before any work
        self.cache_dir = Path(cache_dir)
        self.address = address
        self.progress = progress
        self.source_options = source_options
        self.max_retries = max_retries

    def rows(self, encoder: Any, texts: list[str]) -> np.ndarray:
        """Fill the cache for ``texts`` on Ray; their cache keys (tasks read the vectors themselves)."""
        for part in getattr(encoder, "parts", [encoder]):  # a combined encoder is cached part by part
            exported = {"backend": part.backend, "quantize": part.quantize} if hasattr(part, "export_dir") else {}
            ray_fill(part.spec, [texts], self.cache_dir, options={"source_options": self.source_options, **exported},
                     cluster=Cluster(address=self.address), progress=self.progress)
        return text_keys(texts)

    def run(self, encoder: Any, cells: Iterable[Cell]) -> Iterator[dict[str, Any]]:
        """Result rows of ``cells`` (X: cache keys), as the Ray tasks finish."""
        stores = [(p.fingerprint, p.dim) for p in getattr(encoder, "parts", [encoder])]
        return run_cells(cells, self.cache_dir, stores, address=self.address, max_retries=self.max_retries)


@functools.lru_cache(maxsize=8)
def _worker_store(cache_dir: str, fingerprint: str) -> Store:
    """One Store per worker process, so its key index is read once, not once per cell."""
    return Store(cache_dir, fingerprint)


def _cached_cell(cache_dir: str, stores: list[tuple[str, int]], tests: dict[str, tuple[np.ndarray, np.ndarray]],
                 cell: Cell) -> dict[str, Any]:
    """A cell whose rows are cache keys: read the vectors from the shared cache, then fit and score (an
    out-of-core cell reads its training rows chunk by chunk)."""
    from dataclasses import replace

    from pipeline.study.engines.cells import fit_frozen_cell, streamed

    def read(keys: np.ndarray) -> np.ndarray:
        return np.hstack([_worker_store(cache_dir, fingerprint).read(keys, dim) for fingerprint, dim in stores])

    X = _KeyRows(cell.X, read) if streamed(cell.method, cell.budget, cell.options.out_of_core) else read(cell.X)
    return fit_frozen_cell(replace(cell, X=X, tests={name: (read(keys), labels) for name, (keys, labels) in tests.items()}))


class _KeyRows:
    """Rows of cache keys read on demand, ``rows[positions]``: an out-of-core cell's training set."""

    def __init__(self, keys: np.ndarray, read: Any) -> None:
        self.keys, self.read = keys, read

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, positions: np.ndarray) -> np.ndarray:
        return self.read(self.keys[positions])


def run_cells(cells: Iterable[Cell], cache_dir: str | Path, stores: list[tuple[str, int]], *,
              address: str | None = None, max_retries: int = MAX_RETRIES) -> Iterator[dict[str, Any]]:
    """Rows of ``cells`` whose X are cache keys, run as Ray tasks (one CPU each) that read their vectors
    from the shared cache; yielded as they finish. ``stores`` are the (fingerprint, dim) of the encoder,
    or of each part of a combined one."""
    ray = connect(address)
    task = ray.remote(num_cpus=1, max_retries=max_retries)(_cached_cell)
    shared: dict[int, Any] = {}  # the test sets are one object for every cell: ship it once
    refs = []
    for cell in cells:
        if id(cell.tests) not in shared:
            shared[id(cell.tests)] = ray.put(cell.tests)
        refs.append(task.remote(str(cache_dir), stores, shared[id(cell.tests)], replace(cell, tests={})))
    while refs:
        (done,), refs = ray.wait(refs, num_returns=1)
        try:
            yield ray.get(done)
        except ray.exceptions.RayError as e:
            raise EngineError(f"a compare cell failed after {max_retries} retries ({type(e).__name__}); "
                              f"finished cells are saved in results.jsonl, rerun to resume.\n{e}") from None
