"""A damaged cache is never served: bad checksums and NaN vectors stop `embed` and `fit` with one line;
zero vectors are reported on cache hits too."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_reviews_csv

from pipeline.store.cache import CacheError, EmbeddingCache
from pipeline.cli import main
from pipeline.encoders import get_encoder
from pipeline.encoders.base import ZeroVectorWarning

GLOVE = "glove-6b-50d"


@pytest.fixture
def embedded(rt, tmp_path):
    """120 real RT rows as a CSV, embedded with GloVe: (csv path, cache dir, the store's main file)."""
    data = write_reviews_csv(tmp_path / "reviews.csv", rt, range(120))
    res = CliRunner().invoke(main, ["embed", data, "--encoder", GLOVE, "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 0 and "120 texts (120 unique): 0 hits, 120 misses" in res.output, res.output
    (h5,) = (tmp_path / "c").glob("*.h5")
    return data, tmp_path / "c", h5


def _error_line(args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    (line,) = [line for line in res.output.splitlines() if line.startswith("Error:")]
    return line


def test_embed_refuses_hits_whose_chunk_fails_its_checksum(embedded):
    data, cache, h5 = embedded
    with h5py.File(h5, "r") as f:
        info = f["vectors"].id.get_chunk_info(0)
    with open(h5, "r+b") as f:
        f.seek(info.byte_offset + 40)
        f.write(b"\xff" * 8)
    line = _error_line(["embed", data, "--encoder", GLOVE, "--cache-dir", cache])
    assert line.startswith(f"Error: {h5}: cannot read vectors (")
    assert line.endswith(f"rebuild it: review-transfer cache rm {h5.stem}, then review-transfer embed SOURCE "
                         f"--encoder {GLOVE}.")


def test_nan_vectors_with_valid_checksums_are_damage_everywhere(embedded, tmp_path):
    data, cache, h5 = embedded
    with h5py.File(h5, "r+") as f:  # rewritten through HDF5, so the chunk checksums stay valid
        f["vectors"][7] = np.nan
        f["vectors"][9, 3] = np.inf
    expected = (f"Error: {h5}: 2 cached vectors hold NaN or infinite values; rebuild it: review-transfer cache rm "
                f"{h5.stem}, then review-transfer embed SOURCE --encoder {GLOVE}.")
    assert _error_line(["embed", data, "--encoder", GLOVE, "--cache-dir", cache]) == expected
    assert _error_line(["fit", data, "--encoder", GLOVE, "--head", "nb", "--cache-dir", cache,
                        "--out", tmp_path / "m"]) == expected
    with pytest.raises(CacheError, match="NaN or infinite"):
        EmbeddingCache(cache).vectors(get_encoder(GLOVE), ["x"] + [t for t in _texts(data)])


def _texts(path):
    from pipeline.data.dataset import read_texts

    return read_texts(str(path))


def test_zero_vectors_are_reported_on_cache_hits_too(tmp_path):
    glove, texts = get_encoder(GLOVE), ["A fine and moving film.", "zzqxv blorptastic"]
    for _ in range(2):  # the first call encodes both texts, the second only reads the cache
        with pytest.warns(ZeroVectorWarning, match=r"1 of 2 texts have no word the encoder knows \(texts 2\)"):
            EmbeddingCache(tmp_path).vectors(glove, texts)
    source = tmp_path / "t.csv"
    source.write_text("text\n" + "\n".join(texts) + "\n", encoding="utf-8")
    for hits in ("0 hits", "2 hits"):
        res = CliRunner().invoke(main, ["embed", str(source), "--encoder", GLOVE, "--cache-dir", str(tmp_path / "c")])
        assert res.exit_code == 0 and hits in res.output, res.output
        assert "1 of 2 texts have zero vectors (no known word)" in res.output


def test_an_export_killed_midway_leaves_a_temporary_the_next_export_removes(tmp_path):
    """kill -9 during an export leaves ``.KEY.tmp-HOST-PID-TOKEN`` (90 MB for MiniLM): the next export of that key
    removes it; a live process's and another host's (a shared cache) stay."""
    import os
    import subprocess

    from pipeline.encoders.onnx import _tmp_prefix, remove_stale_exports

    target = tmp_path / "exports" / "openvino-int8-0123456789abcdef"
    target.parent.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    killed, live = (target.parent / f"{_tmp_prefix(target)}{pid}-0000abcd" for pid in (dead.pid, os.getpid()))
    elsewhere = target.parent / f".{target.name}.tmp-another-host-{dead.pid}-0000abcd"
    for leftover in (killed, live, elsewhere):
        leftover.mkdir()
        (leftover / "model.onnx").write_bytes(b"half an export")
    remove_stale_exports(target)
    assert not killed.exists() and live.exists() and elsewhere.exists()


@pytest.mark.parametrize("damage", ["empty", "another store"])
def test_the_cache_rm_that_verify_names_removes_the_store_and_embed_rebuilds_it(embedded, damage):
    """An empty store (a copy killed before its first byte) and another encoder's store copied over this one's name:
    every command names `cache rm FP` (and no encoder spec of the other store), and that command works."""
    data, cache, h5 = embedded
    if damage == "empty":
        h5.write_bytes(b"")
    else:
        other = "glove-6b-50d[pooling=mean]"
        assert CliRunner().invoke(main, ["embed", data, "--encoder", other, "--cache-dir", cache]).exit_code == 0
        (other_h5,) = set(cache.glob("*.h5")) - {h5}
        h5.write_bytes(other_h5.read_bytes())
    line = _error_line(["embed", data, "--encoder", GLOVE, "--cache-dir", cache])
    assert line.startswith(f"Error: {h5}: ")
    assert line.endswith(f"rebuild it: review-transfer cache rm {h5.stem}, then review-transfer embed SOURCE "
                         "--encoder SPEC.")
    verify = CliRunner().invoke(main, ["cache", "verify", h5.stem, "--cache-dir", str(cache)])
    assert verify.exit_code == 1 and f"review-transfer cache rm {h5.stem}," in verify.output, verify.output
    removed = CliRunner().invoke(main, ["cache", "rm", h5.stem, "--cache-dir", str(cache)])
    assert removed.exit_code == 0 and f"removed {h5.stem}" in removed.output, removed.output
    again = CliRunner().invoke(main, ["embed", data, "--encoder", GLOVE, "--cache-dir", str(cache)])
    assert again.exit_code == 0 and "0 hits, 120 misses" in again.output, again.output


def test_an_export_folder_without_its_meta_is_removed_so_the_next_export_can_take_its_place(tmp_path, caplog):
    """A folder at an export's path holding files but no ``meta.json`` (a damaged copy, a hand's work) made every
    later export fail its rename (OSError: Directory not empty) and backend auto fall back on each run."""
    from pipeline.encoders.onnx import META, remove_unfinished_export

    target = tmp_path / "exports" / "openvino-int8-0123456789abcdef"
    target.mkdir(parents=True)
    (target / "model.xml").write_bytes(b"<net/>")
    with caplog.at_level(logging.WARNING, logger="pipeline.encoders.onnx"):  # whatever level earlier tests left
        remove_unfinished_export(target)
    assert not target.exists() and not list(target.parent.iterdir())
    assert "holds no meta.json, so it is no finished export: removed, exporting anew" in caplog.text
    target.mkdir()
    (target / META).write_text("{}", encoding="utf-8")
    remove_unfinished_export(target)  # a finished export stays
    assert (target / META).is_file()


def test_a_damaged_shard_is_named_alone_and_deleting_it_keeps_the_other_rows(embedded, glove, rt, tmp_path):
    from pipeline.store.cache import file_meta, text_keys

    data, cache, h5 = embedded
    more = list(rt.texts[120:180])
    store = EmbeddingCache(cache).store(glove.fingerprint)
    assert store.commit(text_keys(more), glove.encode(more), file_meta(glove)) == 60  # a live shard, as a kill leaves
    (shard,) = store.shard_dir.glob("*.h5")
    shard.write_bytes(shard.read_bytes()[:3000])
    both = write_reviews_csv(tmp_path / "both.csv", rt, range(180))
    line = _error_line(["embed", both, "--encoder", GLOVE, "--cache-dir", cache])
    assert f"{shard}: cannot read the cache file" in line and f"delete that file (rm {shard})" in line, line
    shard.unlink()
    res = CliRunner().invoke(main, ["embed", both, "--encoder", GLOVE, "--cache-dir", str(cache)])
    assert res.exit_code == 0 and "180 texts (180 unique): 120 hits, 60 misses" in res.output, res.output
    assert CliRunner().invoke(main, ["cache", "verify", "--cache-dir", str(cache)]).exit_code == 0
