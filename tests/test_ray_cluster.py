"""The Ray engine on a real multi-node cluster on this machine: a head and worker nodes as separate raylets
(``ray.cluster_utils.Cluster``), ``embed`` and ``compare`` run through the CLI in their own driver process
with ``--address``, one cache directory every node writes to. A worker node is killed mid-run, a node
running another encoder version is refused, and the cache is checked row by row against a local run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from pipeline.store.cache import EmbeddingCache, Store, text_keys

pytestmark = [
    pytest.mark.slow,
    pytest.mark.ray,
    pytest.mark.skipif(find_spec("ray") is None, reason="Ray is not installed: pip install 'review-transfer[ray]'"),
]

GLOVE = "glove-6b-50d"
ROOT = Path(__file__).resolve().parents[1]
CWD = tempfile.gettempdir()  # drivers run outside the checkout: Ray puts a driver's directory on workers' sys.path


@pytest.fixture(scope="module")
def cluster():
    """A head node with 1 CPU; each test adds the worker nodes it needs and removes them."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def texts(rt):
    return rt.texts[:6000]


def _add_node(cluster, env: dict[str, str] | None = None):
    """A worker node (1 CPU); ``env`` is set for its raylet and so for every worker process it starts."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        node = cluster.add_node(num_cpus=1)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    cluster.wait_for_nodes()
    return node


def _cli(*args: str, background: bool = False):
    """Run ``review-transfer ARGS`` in its own driver process (as a user would on the head node)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "pipeline", *args]
    if background:
        return subprocess.Popen(cmd, env=env, cwd=CWD, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, cwd=CWD, capture_output=True, text=True, timeout=240)


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def _check_store(cache_dir: Path, glove, texts: list[str]) -> None:
    """Every text once, no other row, the vectors of a local run, and `cache verify` passing."""
    store = Store(cache_dir, glove.fingerprint)
    with store.locked(exclusive=False):
        keys = np.concatenate([p.keys for p in store.parts()])
    assert len(keys) == len(np.unique(keys)) == len(set(texts))  # no row lost, none duplicated
    assert set(keys.tolist()) == set(text_keys(texts).tolist())
    local = EmbeddingCache(cache_dir.parent / "local-cache", progress=False).vectors(glove, texts)
    np.testing.assert_array_equal(store.read(text_keys(texts), glove.dim), local)
    verify = _cli("cache", "verify", "--cache-dir", str(cache_dir))
    assert verify.returncode == 0 and f"ok        {glove.fingerprint}" in verify.stdout, verify.stdout + verify.stderr
    assert not store.incoming.exists() or not list(store.incoming.glob("*.h5"))


def test_a_worker_node_killed_mid_embed_loses_and_duplicates_no_row(cluster, texts, glove, tmp_path):
    node = _add_node(cluster)
    source, cache_dir = _jsonl(tmp_path / "reviews.jsonl", texts), tmp_path / "cache"
    store = Store(cache_dir, glove.fingerprint)
    run = _cli("embed", str(source), "--encoder", GLOVE, "--cache-dir", str(cache_dir), "--engine", "ray",
               "--address", cluster.address, "--workers", "2", "--shard-size", "25", background=True)
    deadline = time.monotonic() + 120
    while not (store.main.exists() or store.shard_dir.exists()):  # the first shard is adopted: the run is under way
        assert run.poll() is None and time.monotonic() < deadline, run.stdout.read() if run.stdout else ""
        time.sleep(0.02)
    cluster.remove_node(node)  # the raylet and every worker process of the node
    out, _ = run.communicate(timeout=240)
    done = EmbeddingCache(cache_dir, progress=False)
    assert store.verify() == []  # sound whatever happened
    if run.returncode == 0:  # finished on the head node's worker
        assert "Ray workers lost, their shards redone on the workers left" in out, out
    else:  # or stopped with one clear line
        assert "rerun to resume" in out, out
    partial = int(len(texts) - store.missing(text_keys(texts), glove.dim).sum())
    assert 0 < partial <= len(texts)

    again = _cli("embed", str(source), "--encoder", GLOVE, "--cache-dir", str(cache_dir), "--engine", "ray",
                 "--address", cluster.address, "--shard-size", "500")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{partial:,} hits, {len(texts) - partial:,} misses" in again.stderr + again.stdout
    _check_store(cache_dir, glove, texts)
    assert done.vectors(glove, texts[:5]).shape == (5, glove.dim)


def test_compare_on_two_nodes_gives_the_local_results_out_of_core_whole_pool_too(cluster, rt, tmp_path):
    node = _add_node(cluster)
    try:
        data = _jsonl(tmp_path / "labelled.jsonl", [])  # replaced below by labelled rows
        rows = rt.subset(np.arange(1200))
        data.write_text("".join(json.dumps({"text": t, "label": int(y), "movie": g})
                                + "\n" for t, y, g in zip(rows.texts, rows.labels, rows.groups)), encoding="utf-8")
        common = ["--encoder", GLOVE, "--head", "logreg", "--head", "sgd", "--budgets", "32,all", "--seeds", "2",
                  "--out-of-core", "--group-col", "movie", "--no-plot"]
        local = _cli("compare", str(data), *common, "--cache-dir", str(tmp_path / "lc"), "--out", str(tmp_path / "local"))
        assert local.returncode == 0, local.stdout + local.stderr
        on_ray = _cli("compare", str(data), *common, "--cache-dir", str(tmp_path / "rc"), "--out", str(tmp_path / "ray"),
                      "--engine", "ray", "--address", cluster.address)
        assert on_ray.returncode == 0, on_ray.stdout + on_ray.stderr
    finally:
        cluster.remove_node(node)

    def cells(out: str) -> list:
        lines = (tmp_path / out / "results.jsonl").read_text(encoding="utf-8").splitlines()
        return sorted(((r["method"], r["budget"], r["seed"]), r["metrics"], r["params"]) for r in map(json.loads, lines))

    assert len(cells("ray")) == 8 and cells("ray") == cells("local")
    streamed = [params for (method, budget, _), _, params in cells("ray") if method.endswith("+sgd") and budget == "all"]
    assert len(streamed) == 2 and all(p["chunk_rows"] > 0 for p in streamed)  # trained out of core, chunks read on Ray


def test_a_node_with_another_encoder_version_is_refused(cluster, texts, glove, tmp_path):
    """The node runs another copy of the package whose encoders' code version differs, so its GloVe has
    another fingerprint: its worker refuses to start, and the run finishes on the head node's worker."""
    other = tmp_path / "other"
    shutil.copytree(ROOT / "pipeline", other / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    base = other / "pipeline" / "encoders" / "base.py"
    base.write_text(base.read_text(encoding="utf-8").replace("ENCODER_CODE_VERSION = ", "ENCODER_CODE_VERSION = 1000 + "),
                    encoding="utf-8")
    node = _add_node(cluster, {"PYTHONPATH": str(other)})
    try:
        source, cache_dir = _jsonl(tmp_path / "reviews.jsonl", texts[:2000]), tmp_path / "cache"
        run = _cli("embed", str(source), "--encoder", GLOVE, "--cache-dir", str(cache_dir), "--engine", "ray",
                   "--address", cluster.address, "--workers", "2", "--shard-size", "100")
    finally:
        cluster.remove_node(node)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert f"the driver's {glove.fingerprint}; install the same package and model versions on every node" in out, out
    assert "1 of 2 Ray workers lost" in out, out
    _check_store(cache_dir, glove, texts[:2000])
