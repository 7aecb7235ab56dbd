"""The Ray engine on a local Ray instance: same vectors as the local engine, killed workers retried,
compare cells as Ray tasks giving the local engine's results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.store.cache import EmbeddingCache, Store, text_keys
from pipeline.cli import main

pytestmark = pytest.mark.slow  # exports, a cluster or a model: see setup.cfg

ray = pytest.importorskip("ray")

GLOVE = "glove-6b-50d"


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the whole module: starting Ray costs seconds. A new one
    (``address="local"``), not whatever cluster /tmp/ray last recorded."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def texts(rt):
    return rt.texts[:600]


def _all_keys(store: Store) -> np.ndarray:
    with store.locked(exclusive=False):
        return np.concatenate([p.keys for p in store.parts()])


def test_ray_embed_gives_the_local_engines_vectors(local_ray, texts, glove, tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts + texts[:50]), encoding="utf-8")
    runner = CliRunner()
    ray_dir, local_dir = tmp_path / "ray", tmp_path / "local"
    res = runner.invoke(main, ["embed", str(path), "--encoder", GLOVE, "--cache-dir", str(ray_dir),
                               "--engine", "ray", "--workers", "2", "--shard-size", "128"])
    assert res.exit_code == 0, res.output
    assert "650 texts (600 unique): 0 hits, 600 misses" in res.output
    assert runner.invoke(main, ["embed", str(path), "--encoder", GLOVE, "--cache-dir", str(local_dir)]).exit_code == 0

    from_ray = EmbeddingCache(ray_dir).vectors(glove, texts)
    np.testing.assert_array_equal(from_ray, EmbeddingCache(local_dir).vectors(glove, texts))
    np.testing.assert_array_equal(from_ray, glove.encode(texts))
    store = Store(ray_dir, glove.fingerprint)
    assert store.verify() == []
    keys = _all_keys(store)
    assert len(keys) == len(np.unique(keys)) == len(texts)
    assert not store.incoming.exists() and not list(ray_dir.rglob("*.tmp"))

    again = runner.invoke(main, ["embed", str(path), "--encoder", GLOVE, "--cache-dir", str(ray_dir), "--engine", "ray"])
    assert again.exit_code == 0 and "600 hits, 0 misses" in again.output


def _crashing_worker(marker: Path, always: bool):
    """An EncodeWorker that writes half its shard, then dies (os._exit), on its first call or on every call."""
    from pipeline.store.ray_fill import EncodeWorker

    class CrashingWorker(EncodeWorker):
        def encode(self, name, texts):
            if always or not marker.exists():
                marker.touch()
                half = texts[: len(texts) // 2]
                self.store.stage(name, text_keys(half), self.encoder.encode(half), self.meta)  # a torn shard
                os._exit(1)
            return super().encode(name, texts)

    return CrashingWorker


def test_a_worker_killed_mid_shard_is_retried_with_no_duplicate_or_lost_rows(local_ray, texts, glove, tmp_path):
    from pipeline.store.ray_fill import Cluster, ray_fill

    marker = tmp_path / "crashed"
    report = ray_fill(GLOVE, [texts], tmp_path / "c", progress=False,
                      cluster=Cluster(workers=2, shard_size=100, worker_cls=_crashing_worker(marker, always=False)))
    assert marker.exists()  # a worker did die mid-shard
    assert report.misses == len(texts)
    store = Store(tmp_path / "c", glove.fingerprint)
    assert store.verify() == []
    keys = _all_keys(store)
    assert len(keys) == len(np.unique(keys)) == len(texts)
    np.testing.assert_array_equal(store.read(text_keys(texts), glove.dim), glove.encode(texts))


def test_a_shard_failing_every_retry_stops_with_a_clear_error_and_keeps_a_sound_cache(local_ray, texts, glove, tmp_path):
    from pipeline.store.ray_fill import Cluster, ray_fill

    with pytest.raises(RuntimeError, match="no Ray worker left.*rerun to resume"):
        ray_fill(GLOVE, [texts[:200]], tmp_path, progress=False,
                 cluster=Cluster(workers=1, shard_size=100, max_retries=1,
                                 worker_cls=_crashing_worker(tmp_path / "m", always=True)))
    store = Store(tmp_path, glove.fingerprint)
    assert store.verify() == []
    assert not store.main.exists() and not store.has_shards()  # the torn halves were never adopted
    assert not list(store.incoming.glob("*.h5"))


def test_compare_with_ray_tasks_matches_the_local_engine(local_ray, rt, small_glove, tmp_path):
    from pipeline.study.compare import Execution, StudyPlan, run_compare

    data = rt.subset(np.arange(1500))
    plan = StudyPlan(encoders=[GLOVE, f"{GLOVE}+{small_glove}"], heads=["logreg"], budgets=[32, 128], seeds=2)
    local = run_compare(data, plan, Execution(out=tmp_path / "local", cache_dir=tmp_path / "local-cache", progress=False))
    on_ray = run_compare(data, plan, Execution(out=tmp_path / "ray", engine="ray", cache_dir=tmp_path / "cache",
                                               progress=False))
    strip = lambda rows: sorted(  # noqa: E731
        ((r["method"], r["budget"], r["seed"]), r["metrics"], r["params"]) for r in rows)
    assert len(on_ray) == 8
    assert strip(on_ray) == strip(local)
    stores = sorted(p.stem for p in (tmp_path / "cache").glob("*.h5"))
    assert len(stores) == 2  # the combination is cached as its two parts
    assert stores == sorted(p.stem for p in (tmp_path / "local-cache").glob("*.h5"))
    for fingerprint in stores:  # Ray wrote the same rows as the local engine (compare encodes what its cells read)
        ray_keys, local_keys = (_stored_keys(EmbeddingCache(tmp_path / d).store(fingerprint))
                                for d in ("cache", "local-cache"))
        assert len(ray_keys) == len(set(ray_keys)) and 0 < len(ray_keys) <= len(data)
        assert set(ray_keys) == set(local_keys)


def _stored_keys(store) -> list[bytes]:
    """Every key a store holds, its main file and live shards together."""
    with store.locked(exclusive=False):
        return [bytes(k) for part in store.parts() for k in part.keys]


def test_compare_on_ray_runs_the_exported_backend_that_embed_cached(local_ray, rt, tmp_path):
    # vectors embed cached under an exported backend are what compare's Ray workers read: none is encoded again
    # under torch (before, the Ray engine ran every transformer under torch, beside the export's vectors)
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": rt.label_names[int(y)]}) + "\n"
                            for t, y in zip(rt.texts[:160], rt.labels[:160])), encoding="utf-8")
    cache = tmp_path / "cache"
    options = ["--encoder", "minilm", "--backend", "onnx", "--quantize", "int8", "--cache-dir", str(cache)]
    embedded = CliRunner().invoke(main, ["embed", str(path), *options])
    assert embedded.exit_code == 0, embedded.output
    stores = sorted(p.name for p in cache.glob("*.h5"))
    assert len(stores) == 1
    compared = CliRunner().invoke(main, ["compare", str(path), *options, "--head", "logreg", "--budgets", "32",
                                         "--seeds", "1", "--engine", "ray", "--out", str(tmp_path / "report")])
    assert compared.exit_code == 0, compared.output
    assert sorted(p.name for p in cache.glob("*.h5")) == stores
    assert not Store(cache, stores[0].removesuffix(".h5")).missing(text_keys(rt.texts[:160]), 384).any()
