"""The HDF5 embedding cache: exact round trips, fingerprints, subsets, crash leftovers, corruption, Embedder."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from pipeline.disk import DiskFullError, is_disk_full
from pipeline.store.cache import CacheError, EmbeddingCache, _read_rows, list_stores, text_keys
from pipeline.store.embedder import Embedder
from pipeline.encoders import get_encoder


@pytest.fixture(scope="module")
def filled(glove, rt, tmp_path_factory):
    """A cache holding GloVe vectors of all RT texts, and the direct encoding of them."""
    cache_dir = tmp_path_factory.mktemp("cache")
    cache = EmbeddingCache(cache_dir, chunk_size=4000)
    return cache_dir, cache.vectors(glove, rt.texts), glove.encode(rt.texts)


def _keys_and_rows(cache_dir, fingerprint):
    with h5py.File(cache_dir / f"{fingerprint}.h5", "r") as f:
        return f["keys"][:], f["vectors"][:]


class CountingEncoder:
    """A real GloVe encoder that records the size of every encode call."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        self.spec, self.dim, self.fingerprint = inner.spec, inner.dim, inner.fingerprint
        self.last_stats = {}

    def full_params(self):
        return self.inner.full_params()

    def encode(self, texts, progress=None):
        self.calls.append(len(texts))
        out = self.inner.encode(texts, progress)
        self.last_stats = self.inner.last_stats
        return out


def test_cache_returns_exactly_what_the_encoder_gives(filled, glove, rt):
    cache_dir, cached, direct = filled
    np.testing.assert_array_equal(cached, direct)
    keys, vectors = _keys_and_rows(cache_dir, glove.fingerprint)
    assert len(keys) == len(np.unique(keys)) == len(rt.texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(rt.texts), 50)
    with h5py.File(cache_dir / f"{glove.fingerprint}.h5", "r") as f:
        assert f.attrs["fingerprint"] == glove.fingerprint and f.attrs["dim"] == 50
        assert f["vectors"].chunks is not None and f["vectors"].maxshape == (None, 50)


def test_hits_duplicates_and_input_order(filled, glove, rt):
    cache_dir, _, direct = filled
    cache = EmbeddingCache(cache_dir)
    texts = [rt.texts[7], rt.texts[3], rt.texts[7], "a brand new review, never seen"]
    v = cache.vectors(glove, texts)
    r = cache.last_report
    assert (r.texts, r.unique, r.hits, r.misses) == (4, 3, 2, 1)
    np.testing.assert_array_equal(v[:3], direct[[7, 3, 7]])
    np.testing.assert_array_equal(v[3], glove.encode(texts[3:])[0])
    assert cache.vectors(glove, []).shape == (0, 50)
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        cache.vectors(glove, ["ok", 3])


def test_fingerprint_change_means_a_new_file(filled, glove, rt):
    cache_dir, _, _ = filled
    sif = get_encoder("glove-6b-50d", pooling="sif")
    cache = EmbeddingCache(cache_dir)
    v = cache.vectors(sif, rt.texts[:50])
    assert cache.path(sif) != cache.path(glove) and cache.path(sif).exists()
    assert cache.last_report.misses == 50  # nothing stale served from the mean-pooled file
    np.testing.assert_array_equal(v, sif.encode(rt.texts[:50]))
    assert {s.fingerprint for s in list_stores(cache_dir)} >= {glove.fingerprint, sif.fingerprint}


def test_chunks_bound_each_encode_call(glove, rt, tmp_path):
    enc = CountingEncoder(glove)
    cache = EmbeddingCache(tmp_path, chunk_size=100)
    v = cache.vectors(enc, rt.texts[:450])
    assert enc.calls == [100, 100, 100, 100, 50]
    np.testing.assert_array_equal(v, glove.encode(rt.texts[:450]))
    assert not any(tmp_path.glob("*.shards/*.h5"))  # merged into the main file
    assert cache.last_report.stats["tokens"] > 0


def test_reading_a_subset_touches_only_its_chunks(filled, glove):
    cache_dir, _, _ = filled
    rows = np.array([11, 5000, 12000, 5001])

    class Spy:
        def __init__(self, ds):
            self.ds, self.read = ds, 0
            self.chunks, self.shape = ds.chunks, ds.shape

        def __getitem__(self, sl):
            self.read += sl.stop - sl.start
            return self.ds[sl]

    with h5py.File(cache_dir / f"{glove.fingerprint}.h5", "r") as f:
        spy = Spy(f["vectors"])
        out = np.empty((4, 50), np.float32)
        _read_rows(spy, rows, out, np.arange(4))
        assert spy.read <= 3 * f["vectors"].chunks[0] < f["vectors"].shape[0]
        np.testing.assert_array_equal(out, f["vectors"][:][rows])


def test_crash_leftovers_are_ignored_then_swept(glove, rt, tmp_path):
    """Shards a kill left after compaction and half-written tmp files never show up as rows."""
    cache = EmbeddingCache(tmp_path, chunk_size=100)
    store = cache.store(glove.fingerprint)
    texts = rt.texts[:300]
    cache.vectors(glove, texts[:200])  # main file from 2 shards
    meta = {"fingerprint": glove.fingerprint, "params": "{}", "dim": 50, "spec": glove.spec, "merged_upto": -1}
    store.commit(text_keys(texts[200:250]), glove.encode(texts[200:250]), meta)
    store.commit(text_keys(texts[250:]), glove.encode(texts[250:]), meta)
    leftovers = {p.name: p.read_bytes() for p in store.shard_dir.glob("*.h5")}
    assert len(leftovers) == 2
    store.compact(force=True)
    store.shard_dir.mkdir()
    for name, data in leftovers.items():  # as if killed between os.replace and deleting the shards
        (store.shard_dir / name).write_bytes(data)
    (store.shard_dir / "00000009.h5.123.tmp").write_bytes(b"half a shard")
    (tmp_path / f"{glove.fingerprint}.h5.456.tmp").write_bytes(b"half a main file")
    np.testing.assert_array_equal(EmbeddingCache(tmp_path).vectors(glove, texts), glove.encode(texts))
    assert store.verify() == []
    cache.vectors(glove, ["one more text"])  # the next write sweeps the leftovers
    assert not list(tmp_path.rglob("*.tmp")) and not any((store.shard_dir / n).exists() for n in leftovers)
    keys = np.concatenate([p.keys for p in store.parts()])
    assert len(keys) == len(np.unique(keys)) == 301


def test_a_full_disk_names_the_cache_and_leaves_what_was_stored(glove, rt, tmp_path, monkeypatch):
    """A write that runs out of space (reported at fsync, as a full disk's delayed writes are) is one line naming
    the cache, its free space and the fix; its part-written file is gone and the rows stored before are intact."""
    cache = EmbeddingCache(tmp_path, chunk_size=100)
    texts = rt.texts[:300]
    cache.vectors(glove, texts[:100])

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", full)
        with pytest.raises(DiskFullError, match=rf"no room on the disk of {tmp_path}/\w+\.shards \([\d.]+ (bytes|KB|MB|GB) free\).*"
                                                 r"nothing half-written.*REVIEW_TRANSFER_CACHE=DIR or --cache-dir"):
            cache.vectors(glove, texts)
    assert not list(tmp_path.rglob("*.tmp"))
    with monkeypatch.context() as m:  # a disk with less room than the rows take: refused before HDF5 writes a byte
        m.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9 - 50_000, free=50_000))
        with pytest.raises(DiskFullError, match=r"\(50\.0 KB free\)"):
            cache.vectors(glove, texts)
    assert not list(tmp_path.rglob("*.tmp"))
    assert cache.store(glove.fingerprint).verify() == []
    np.testing.assert_array_equal(cache.vectors(glove, texts), glove.encode(texts))


@pytest.mark.parametrize("message", [  # what HDF5 (h5py) and the tokenizers' Rust code say, as seen on a full tmpfs
    "[Errno 28] Driver write request failed (file write failed: time = Mon Dec  7 15:17:05 2026\n, filename = "
    "'c/fbdb.h5.17022.tmp', file descriptor = 4, errno = 28, error message = 'No space left on device')",
    "No space left on device (os error 28)"])
def test_libraries_own_full_disk_errors_are_recognised(message):
    assert is_disk_full(Exception(message)) and not is_disk_full(Exception("Permission denied (os error 13)"))


def test_truncated_file_is_reported_with_how_to_rebuild(glove, rt, tmp_path):
    EmbeddingCache(tmp_path).vectors(glove, rt.texts[:2000])
    path = tmp_path / f"{glove.fingerprint}.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheError, match=rf"{path}.*cache rm {glove.fingerprint}"):
        EmbeddingCache(tmp_path).vectors(glove, rt.texts[:10])
    problems = EmbeddingCache(tmp_path).store(glove.fingerprint).verify()
    assert problems and str(path) in problems[0] and "cache rm" in problems[-1]


def test_flipped_bytes_are_caught_by_checksums(glove, rt, tmp_path):
    EmbeddingCache(tmp_path).vectors(glove, rt.texts[:3000])
    path = tmp_path / f"{glove.fingerprint}.h5"
    with h5py.File(path, "r") as f:
        info = f["vectors"].id.get_chunk_info(1)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + 100)
        f.write(b"\xff" * 8)
    store = EmbeddingCache(tmp_path).store(glove.fingerprint)
    problems = store.verify()
    assert any("unreadable" in p for p in problems), problems
    with pytest.raises(CacheError, match="cannot read vectors"):
        store.read(text_keys(rt.texts[:3000]), 50)


def test_a_file_under_the_wrong_name_is_refused(filled, glove, tmp_path):
    cache_dir, _, _ = filled
    shutil.copy(cache_dir / f"{glove.fingerprint}.h5", tmp_path / "0123456789abcdef.h5")
    with pytest.raises(CacheError, match="fingerprint attribute"):
        EmbeddingCache(tmp_path).store("0123456789abcdef").parts()


# ------------------------------------------------------------------------------------------ Embedder
def test_embedder_is_a_clonable_picklable_sklearn_transformer(filled, rt):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    cache_dir, _, direct = filled
    emb = Embedder("glove-6b-50d", cache_dir=str(cache_dir))
    assert emb.get_params()["spec"] == "glove-6b-50d" and "_encoder" not in vars(emb)
    np.testing.assert_array_equal(emb.fit_transform(rt.texts[:20]), direct[:20])
    assert not {"_encoder", "_cache"} & set(pickle.loads(pickle.dumps(emb)).__dict__)
    assert clone(emb).get_params() == emb.get_params()
    np.testing.assert_array_equal(emb.transform(np.array(rt.texts[:3], dtype=object).reshape(-1, 1)), direct[:3])
    assert emb.get_feature_names_out()[:2].tolist() == ["emb0", "emb1"]

    pipe = make_pipeline(Embedder("glove-6b-50d", cache_dir=str(cache_dir)), LogisticRegression(max_iter=500))
    pipe.fit(rt.texts[:400], rt.labels[:400])
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.predict(rt.texts[400:450]), pipe.predict(rt.texts[400:450]))
    with pytest.raises(ValueError, match="one column"):
        emb.transform(np.zeros((2, 2)))


def test_no_cache_dir_means_the_environment_variable_then_the_default(glove, rt, tmp_path, monkeypatch):
    from pipeline.paths import ENV_VAR, cache_dir_or_default

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "shared"))
    EmbeddingCache(None, progress=False).vectors(glove, rt.texts[:5])
    assert [s.fingerprint for s in list_stores(None)] == [glove.fingerprint]
    assert (tmp_path / "shared" / f"{glove.fingerprint}.h5").is_file()
    assert cache_dir_or_default(tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.delenv(ENV_VAR)
    assert str(cache_dir_or_default(None)) == str(cache_dir_or_default("")) == "cache"
