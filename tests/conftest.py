"""Shared fixtures: the real RT corpus and small real subsets of it."""

from __future__ import annotations

import os
from typing import Any

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    # `make test` runs two pytest-xdist workers on two cores: one OpenMP thread each (torch, BLAS, the e5 engine),
    # set before numpy or torch load and inherited by the commands tests start, so workers do not oversubscribe
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from helpers import write_small_glove

from pipeline.store.cache import EmbeddingCache
from pipeline.data.dataset import Dataset, load, sample_budget, split
from pipeline.encoders import get_encoder

# Test files that share one xdist worker (one group): the Ray tests, since a Ray cluster started by one
# records itself in /tmp/ray and a plain ray.init() in another worker would join it; and the files that read
# RT in MiniLM vectors through `minilm_cached`, so those texts are encoded once per run, not once per worker.
SHARED_WORKER = {"test_ray.py": "ray", "test_ray_cluster.py": "ray",
                 "test_prior.py": "minilm-rt", "test_prompts.py": "minilm-rt", "test_selection.py": "minilm-rt"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``pytest -n 2 --dist loadfile`` (``make test``): each test file is one unit of work, so its module
    fixtures are built once; the files of :data:`SHARED_WORKER` make one unit. (xdist's own ``xdist_group``
    marks do not take under pytest 9, whose node ids xdist cannot rename.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedWorkerScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return SHARED_WORKER.get(file.rsplit("/", 1)[-1], file)

    return SharedWorkerScheduling(config, log)


@pytest.fixture(autouse=True)
def _language_warning_afresh() -> None:
    """The language warning is said once per encoder in a process (one command); each test starts as a new one."""
    from pipeline.encoders import language

    language._WARNED.clear()


@pytest.fixture(scope="session")
def glove():
    """The real GloVe 6B 50-d encoder, loaded once for every test that reads through it."""
    return get_encoder("glove-6b-50d")


@pytest.fixture(scope="session")
def rt() -> Dataset:
    """The whole Rotten Tomatoes corpus (downloaded once into the data cache)."""
    return load("rt")


@pytest.fixture(scope="session")
def rt_split(rt: Dataset) -> tuple[Dataset, Dataset]:
    """(pool, test) of RT."""
    return split(rt)


@pytest.fixture(scope="session")
def minilm_cached(tmp_path_factory) -> tuple:
    """(MiniLM at fp32, one cache for the session): tests that read RT texts in MiniLM vectors (the test split,
    nested budget samples of the pool) encode each text once per run. fp32 on every machine (what ``auto`` gives
    without AMX; bf16 without it ran 1.4x slower here): these tests are about the heads, not the precision. The
    cache checks every row it returns; a test adds rows, never changes one."""
    cache = EmbeddingCache(tmp_path_factory.mktemp("minilm-cache"), progress=False)
    return get_encoder("minilm", precision="fp32"), cache


@pytest.fixture(scope="session")
def glove_xy(rt_split, tmp_path_factory):
    """GloVe vectors (through the project's cache) of 300 balanced pool texts and 400 test texts."""
    pool, test = rt_split
    train = sample_budget(pool, 300, seed=0)
    test = test.subset(np.arange(400))
    vectors = EmbeddingCache(tmp_path_factory.mktemp("cache")).vectors(
        get_encoder("glove-6b-50d"), train.texts + test.texts
    )
    return train, vectors[: len(train)], test, vectors[len(train) :]


@pytest.fixture(scope="session")
def small_glove(tmp_path_factory) -> str:
    """Spec of a real GloVe text file: the 5,000 most frequent words of the packaged GloVe 6B 50d."""
    path = tmp_path_factory.mktemp("vectors") / "small.txt"
    write_small_glove(get_encoder("glove-6b-50d"), path)
    return f"glove:{path}"


@pytest.fixture(scope="session")
def glove_bundle(rt, tmp_path_factory):
    """(bundle directory, cache directory): GloVe + logreg fitted on 1,000 RT labels and saved by `fit`."""
    from pipeline.fit.train import fit

    root = tmp_path_factory.mktemp("glove-bundle")
    fit(rt, encoder="glove-6b-50d", budget=1000, cache_dir=root / "cache", out=root / "bundle")
    return root / "bundle", root / "cache"


@pytest.fixture(autouse=True)
def _root_logger_left_as_found() -> Any:
    """A test that leaves the root logger at another level silences the caplog tests after it in its worker."""
    import logging

    root = logging.getLogger()
    level = root.level
    yield
    changed, root.level = root.level, level
    assert changed == level, f"the root logger was left at level {changed}, not {level} as found"
