"""Compaction past the main file's first rows: shards merge into segment files, the main file is never
rewritten by a fill, the copying stays linear in the rows added, and a kill at any moment leaves a sound store."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

import pipeline.store.cache as cache_mod
from pipeline.store.cache import Store, text_keys

FP = "0123456789abcdef"
DIM = 8
META = {"fingerprint": FP, "params": "{}", "dim": DIM, "spec": "synthetic", "merged_upto": -1}


def _batch(i: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys and vectors of batch ``i``: the same for the same ``i`` in any process."""
    keys = text_keys([f"review {i} {j}" for j in range(rows)])
    return keys, np.random.default_rng(i).standard_normal((rows, DIM)).astype(np.float32)


def _fill(store: Store, batches: range, rows: int) -> None:
    """Commit batches as a fill does: a shard each, compaction considered from 16 shards on."""
    for i in batches:
        store.commit(*_batch(i, rows), META)
        if store.shard_count() >= cache_mod.SHARDS_BEFORE_MERGE:
            store.compact()
    store.compact()


def _check(store: Store, batches: range, rows: int) -> None:
    keys = np.concatenate([_batch(i, rows)[0] for i in batches])
    vectors = np.concatenate([_batch(i, rows)[1] for i in batches])
    np.testing.assert_array_equal(store.read(keys, DIM), vectors)
    assert store.verify() == []
    with store.locked(exclusive=False):
        stored = np.concatenate([p.keys for p in store.parts()])
    assert len(stored) == len(np.unique(stored)) == len(keys)  # no row lost or duplicated


def test_past_the_main_file_shards_merge_into_segments_and_copies_stay_linear(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "SEGMENT_ROWS", 256)
    written: list[tuple[str, int]] = []
    real = cache_mod._write_atomic

    def counting(path, meta, blocks, rows=None):
        blocks = list(blocks)
        written.append((path.parent.name, sum(len(k) for k, _ in blocks)))
        assert rows is None or rows == written[-1][1]  # the room checked for is what is written
        real(path, meta, blocks, rows)

    monkeypatch.setattr(cache_mod, "_write_atomic", counting)
    store = Store(tmp_path, FP)
    _fill(store, range(120), 32)  # 3,840 rows in shards of 32
    _check(store, range(120), 32)
    merged = [(where, n) for where, n in written if where != f"{FP}.shards"]
    kinds = [where for where, _ in merged]
    last_main = len(kinds) - 1 - kinds[::-1].index(tmp_path.name)
    assert last_main < kinds.index(f"{FP}.segments")  # once segments start, the main file is not rewritten
    assert sum(n for where, n in merged if where == tmp_path.name) <= 3 * 512
    segments = sorted(store.segment_dir.glob("*.h5"))
    assert len(segments) == sum(1 for where, _ in merged if where == f"{FP}.segments") >= 5
    assert sum(n for _, n in merged) <= 2 * 3840  # each row copied about once, not once per merge
    first_last = [tuple(map(int, p.stem.split("-"))) for p in segments]
    assert all(a <= b < c for (a, b), (c, _) in zip(first_last, first_last[1:]))  # disjoint ranges of shards


def test_forced_compaction_folds_segments_into_the_main_file(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "SEGMENT_ROWS", 256)
    store = Store(tmp_path, FP)
    _fill(store, range(60), 16)
    assert list(store.segment_dir.glob("*.h5"))
    assert store.compact(force=True)
    assert not store.segment_dir.exists() and not store.shard_dir.exists()
    _check(store, range(60), 16)
    store.commit(*_batch(500, 16), META)  # numbering goes on past every absorbed shard
    _check(store, [*range(60), 500], 16)


def test_cache_ls_counts_segments_and_shards_apart(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipeline.cli import main

    monkeypatch.setattr(cache_mod, "SEGMENT_ROWS", 256)
    store = Store(tmp_path, FP)
    _fill(store, range(60), 16)
    store.commit(*_batch(500, 16), META)  # live shards beside the segments
    summary = store.summary()
    assert summary["segments"] == len(list(store.segment_dir.glob("*.h5"))) >= 2
    assert summary["shards"] == store.shard_count() >= 1 and summary["rows"] == 61 * 16
    result = CliRunner().invoke(main, ["cache", "ls", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"+{summary['segments']} segments +{summary['shards']} shards" in result.output


def test_what_a_kill_during_a_segment_merge_can_leave_is_never_read_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "SEGMENT_ROWS", 256)
    store = Store(tmp_path, FP)
    _fill(store, range(20), 16)  # a main file of 256 rows, 4 shards left over
    assert not store.segment_dir.exists()
    for i in range(20, 36):
        store.commit(*_batch(i, 16), META)
    shards = {p.name: p.read_bytes() for p in store.shard_dir.glob("*.h5")}
    assert len(shards) == 20 and store.compact()
    (segment,) = store.segment_dir.glob("*.h5")
    # As if killed between the segment's rename and deleting the shards it absorbed, and mid-write of another.
    store.shard_dir.mkdir(exist_ok=True)
    for name, data in shards.items():
        (store.shard_dir / name).write_bytes(data)
    (store.segment_dir / f"{segment.name}.77.tmp").write_bytes(b"half a segment")
    _check(Store(tmp_path, FP), range(36), 16)
    store.commit(*_batch(99, 16), META)  # the next writer sweeps the leftovers
    assert not list(tmp_path.rglob("*.tmp")) and not any((store.shard_dir / n).exists() for n in shards)
    _check(store, [*range(36), 99], 16)


CHILD = """
import sys
import pipeline.store.cache as cache_mod
sys.path.insert(0, sys.argv[1])
from test_store_segments import META, _batch
cache_mod.SEGMENT_ROWS = 256
store = cache_mod.Store(sys.argv[2], META["fingerprint"])
for i in range(int(sys.argv[3]), 10**6):
    store.commit(*_batch(i, 16), META)
    with open(sys.argv[4], "a") as f:
        f.write(f"{i}\\n")
    if store.shard_count() >= cache_mod.SHARDS_BEFORE_MERGE:
        store.compact()
"""


def _lines(path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


def test_kill_9_during_fills_and_segment_merges_leaves_a_sound_store(tmp_path):
    log = tmp_path / "committed.log"
    store = Store(tmp_path / "cache", FP)
    rng = random.Random(0)
    committed: list[int] = []
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, os.path.dirname(__file__), str(store.dir),
                                 str(len(committed) and committed[-1] + 1), str(log)])
        deadline = time.monotonic() + 60  # let it commit a dozen batches, then kill it at a random moment
        while proc.poll() is None and _lines(log) < len(committed) + 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        committed = [int(x) for x in log.read_text().split()] if log.exists() else []
        # A commit may be in place without its log line (killed between the two): it is read once, like the rest.
        done = range(committed[-1] + 2) if committed else range(1)
        with store.locked(exclusive=False):
            stored = {k for p in store.parts() for k in p.keys.tolist()}
        assert all(k in stored for i in committed for k in _batch(i, 16)[0].tolist())
        assert stored <= {k for i in done for k in _batch(i, 16)[0].tolist()}
        assert store.verify() == []
    assert len(committed) >= 48 and list(store.segment_dir.glob("*.h5"))  # the kills fell on segment merges too
    last = committed[-1] + 1
    if not store.missing(_batch(last, 16)[0], DIM).any():
        committed.append(last)
    _check(store, range(committed[-1] + 1), 16)


def test_keys_sharing_their_index_prefix_are_told_apart_by_the_whole_key(tmp_path):
    """Parts are searched by the first 16 hex digits of each key; a match still needs the whole key."""
    rng = np.random.default_rng(0)
    hexes = [rng.bytes(24).hex() for _ in range(6)]
    keys = np.array([("0" * 16 + h).encode() for h in hexes[:4]] + [b"zz" + b"0" * 62, b"0" * 64],
                    dtype="S64")  # four keys with one prefix, a non-hex key with that prefix, and one more
    vectors = rng.standard_normal((len(keys), DIM)).astype(np.float32)
    store = Store(tmp_path, FP)
    store.commit(keys[:3], vectors[:3], META)
    store.commit(keys[3:], vectors[3:], META)
    order = [5, 2, 4, 0, 3, 1]
    np.testing.assert_array_equal(store.read(keys[order], DIM), vectors[order])
    absent = np.array([("0" * 16 + hexes[4]).encode(), ("0" * 16 + hexes[5]).encode()], dtype="S64")
    assert store.missing(absent, DIM).all() and not store.missing(keys, DIM).any()
    assert store.commit(keys, vectors, META) == 0  # nothing stored twice
