"""The engine interface compare hands its frozen cells to: the local engine's rows are the cache's
vectors and its results are fit_frozen_cell's; an unknown or uninstalled engine fails before any work."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pipeline import MissingExtraError, OptionError
from pipeline.store.cache import EmbeddingCache
from pipeline.study.engines.base import Method
from pipeline.study.engines.cells import fit_frozen_cell
from pipeline.data.dataset import budget_indices, split
from pipeline.encoders import get_encoder
from pipeline.study.engines import Cell, get_engine


def test_local_engine_returns_cached_vectors_and_fit_frozen_cell_rows(rt, tmp_path):
    pool, test = split(rt.subset(np.arange(800)))
    encoder = get_encoder("glove-6b-50d")
    engine = get_engine("local", tmp_path, jobs=2, progress=False)
    texts = pool.texts + test.texts
    rows = engine.rows(encoder, texts)
    np.testing.assert_array_equal(rows, EmbeddingCache(tmp_path).vectors(encoder, texts))
    tests = {"test": (rows[len(pool):], test.labels)}
    cells = []
    for seed in (0, 1):
        idx = budget_indices(pool, 32, seed)
        cells.append(Cell(Method("glove-6b-50d", "logreg"), 32, seed, rows[idx], pool.labels[idx], None, tests))
    got = sorted(engine.run(encoder, cells), key=lambda r: r["seed"])
    direct = [fit_frozen_cell(c) for c in cells]
    assert [r["metrics"] for r in got] == [r["metrics"] for r in direct]
    assert [r["params"] for r in got] == [r["params"] for r in direct]


def test_unknown_or_missing_engines_fail_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(OptionError, match="--engine 'spark': unknown; use one of local, ray"):
        get_engine("spark", tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'review-transfer\[ray\]'"):
        get_engine("ray", tmp_path)
    assert not list(tmp_path.iterdir())
