"""The trust policy at load time: an edited bundle never downloads, never unpickles, never runs code,
and edits to what it outputs (label names, head) are refused. Real bundles, real files, real pickles."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.bundle.bundle import MANIFEST, Bundle, BundleError
from pipeline.cli import main
from pipeline.data.dataset import sample_budget
from pipeline.bundle.manifest import SIGNING_KEY_ENV, seal
from pipeline.fit.train import fit
from helpers import write_reviews_csv

TEXT = "A moving, beautiful film."


class _MakesMarker:
    """Unpickling this object calls ``open(marker, "w")``: the marker file appears if any code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def made(rt_split, tmp_path_factory):
    """(bundle dir, cache dir, train csv): logreg on packaged GloVe over 200 RT labels, saved once."""
    pool, _ = rt_split
    root = tmp_path_factory.mktemp("trust")
    train = sample_budget(pool, 200, seed=0)
    csv = write_reviews_csv(root / "train.csv", train, range(len(train)))
    fit(csv, encoder="glove-6b-50d", head="logreg", cache_dir=root / "cache", out=root / "bundle")
    return root / "bundle", root / "cache", csv


@pytest.fixture
def bundle(made, tmp_path):
    """A fresh copy of the bundle, safe to edit, and its cache directory."""
    path, cache, _ = made
    shutil.copytree(path, tmp_path / "b")
    return tmp_path / "b", cache


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connect or name lookup is recorded and refused: the list must stay empty."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def edit(path: Path, change, *, reseal: bool) -> None:
    """Apply ``change`` to the manifest; with ``reseal`` recompute its digest, as a forger without the
    signing key would (any old signature is kept)."""
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    if reseal:
        with mock.patch.dict(os.environ):
            os.environ.pop(SIGNING_KEY_ENV, None)
            manifest = {**manifest, "digest": seal(manifest)["digest"]}
    (path / MANIFEST).write_text(json.dumps(manifest))


def predict(path: Path, cache: Path, *extra: str):
    return CliRunner().invoke(main, ["predict", str(path), TEXT, "--cache-dir", str(cache), *extra])


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_the_untouched_bundle_predicts(bundle, no_network):
    path, cache = bundle
    result = predict(path, cache)
    assert result.exit_code == 0, result.output
    assert result.output.split("\t")[0] in {"fresh", "rotten"}
    assert not no_network


@pytest.mark.parametrize("target", ["hub", "outside-dir", "pickle", "w2v-train"])
def test_an_edited_encoder_spec_is_refused_without_network_or_code(bundle, no_network, tmp_path, target):
    path, cache = bundle
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.kv"
    with open(evil, "wb") as f:
        pickle.dump(_MakesMarker(marker), f)
    with open(evil, "rb") as f:  # the pickle is real: loading it runs code
        pickle.load(f)
    assert marker.exists()
    marker.unlink()
    outside = tmp_path / "models" / "x"
    outside.mkdir(parents=True)
    spec = {"hub": "hf:org/x", "outside-dir": f"st:{outside}", "pickle": f"w2v:{evil}",
            "w2v-train": f"w2v-train:{evil}"}[target]

    def change(m):
        m["encoder"]["spec"] = spec
        m["encoder"]["options"] = {}

    edit(path, change, reseal=False)
    assert "changed since the bundle was saved" in one_line_error(predict(path, cache))
    edit(path, change, reseal=True)  # a forger who recomputes the digest meets the trust policy
    line = one_line_error(predict(path, cache))
    assert "refusing encoder" in line and str(path / MANIFEST) in line
    assert "--encoder-path" in line or "Refit" in line
    assert not no_network, "a download was attempted"
    assert not marker.exists(), "code ran while loading the bundle"


def test_encoder_path_names_the_file_and_trust_encoder_trusts_the_spec(bundle, tmp_path, no_network):
    path, cache = bundle
    edit(path, lambda m: m["encoder"].update(spec=f"st:{tmp_path}/elsewhere", options={}), reseal=True)
    with pytest.raises(BundleError, match="outside the bundle"):
        Bundle.load(path, cache_dir=cache)
    # --trust-encoder resolves the spec as the user's own: the missing directory is what fails now
    with pytest.raises(Exception, match="elsewhere"):
        Bundle.load(path, cache_dir=cache, trust_encoder=True)
    assert not no_network


@pytest.mark.parametrize("field, change, message", [
    ("label_names", lambda m: m["label_names"].reverse(), "changed since the bundle was saved"),
    ("label_names", lambda m: m["label_names"].append("meh"), "label_names is"),
    ("head.name", lambda m: m["head"].update(name="rbf-svm"), "changed since the bundle was saved"),
    ("head.params", lambda m: m["head"].update(params="C=1"), "head.params is str"),
    ("prior.train", lambda m: m["prior"].update(train=0), "prior.train is 0"),
    ("encoder.options", lambda m: m["encoder"].update(options={"pooling": "cls"}), "not your command line"),
    ("encoder.options", lambda m: m["encoder"].update(options={"bogus": 1}), "does not apply"),
    ("section", lambda m: m.update(extra={"x": 1}), "unknown section"),
])
def test_edited_manifest_fields_are_refused_in_one_line(bundle, field, change, message):
    path, cache = bundle
    edit(path, change, reseal=False)
    line = one_line_error(predict(path, cache))
    assert message in line and str(path / MANIFEST) in line
    assert "--pooling" not in line  # the user gave no flag: the text names the manifest instead


def test_a_head_name_that_does_not_match_the_head_is_refused_even_when_resealed(bundle):
    path, cache = bundle
    edit(path, lambda m: m["head"].update(name="rbf-svm"), reseal=True)
    line = one_line_error(predict(path, cache))
    assert "head.name is 'rbf-svm'" in line and "LogisticRegression" in line


def test_signing_key_refuses_unsigned_and_mis_signed_bundles(made, bundle, tmp_path, monkeypatch):
    path, cache = bundle
    monkeypatch.setenv(SIGNING_KEY_ENV, "k1")
    assert "not signed" in one_line_error(predict(path, cache))
    monkeypatch.delenv(SIGNING_KEY_ENV)
    loaded = Bundle.load(path, cache_dir=cache)
    monkeypatch.setenv(SIGNING_KEY_ENV, "k1")
    loaded.save(tmp_path / "signed")
    assert json.loads((tmp_path / "signed" / MANIFEST).read_text())["signature"]
    assert predict(tmp_path / "signed", cache).exit_code == 0
    # swapped label names with a recomputed digest: only the signature can tell, and it does
    edit(tmp_path / "signed", lambda m: m["label_names"].reverse(), reseal=True)
    assert "signature does not match" in one_line_error(predict(tmp_path / "signed", cache))
    monkeypatch.setenv(SIGNING_KEY_ENV, "another key")
    loaded.save(tmp_path / "other")
    monkeypatch.setenv(SIGNING_KEY_ENV, "k1")
    assert "signature does not match" in one_line_error(predict(tmp_path / "other", cache))


def test_a_0_3_bundle_loads_only_when_asked_and_with_a_warning(bundle):
    path, cache = bundle

    def downgrade(m):
        m["format_version"] = 1
        m.pop("digest")

    edit(path, downgrade, reseal=False)
    assert "--allow-legacy" in one_line_error(predict(path, cache))
    with pytest.warns(UserWarning, match="saved by review-transfer 0.3"):
        loaded = Bundle.load(path, cache_dir=cache, allow_legacy=True)
    assert loaded.predict([TEXT]).shape == (1,)


def test_a_w2v_train_bundle_carries_its_vectors(made, tmp_path, no_network):
    _, cache, csv = made
    source = tmp_path / "reviews.csv"
    shutil.copy(csv, source)
    out = tmp_path / "w2v"
    fitted = fit(str(source), encoder=f"w2v-train:{source}", head="logreg", cache_dir=cache, out=out)
    assert (out / "encoder" / "w2v-train-0.npz").is_file()
    expected = fitted.predict_proba([TEXT])
    source.unlink()  # SOURCE is not needed to predict
    loaded = Bundle.load(out, cache_dir=tmp_path / "fresh-cache")
    np.testing.assert_allclose(loaded.predict_proba([TEXT]), expected, rtol=1e-6)
    # a 0.3 bundle of w2v-train has no vectors: refit, or retrain from SOURCE with --trust-encoder
    (out / "encoder" / "w2v-train-0.npz").unlink()

    def legacy(m):
        m["files"].pop("encoder/w2v-train-0.npz")

    edit(out, legacy, reseal=True)
    line = one_line_error(predict(out, cache))
    assert "does not carry the trained vectors" in line and "--trust-encoder" in line


@pytest.mark.parametrize("name", ["logreg", "ridge", "linear-svm"])
def test_heads_fitted_on_unit_length_rows_pass_the_identity_check(name):
    """Sentence-embedding rows (unit length) give logreg and ridge no scaler: still their own head."""
    from pipeline.bundle.bundle import check_head_identity
    from pipeline.heads.registry import fit_head

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = (X[:, 0] > 0).astype(int)
    fitted = fit_head(name, X, y, selection=None)
    check_head_identity(fitted.estimator, name, "manifest.json")
    with pytest.raises(BundleError, match="which is not that head"):
        check_head_identity(fitted.estimator, "knn", "manifest.json")


def test_a_normalizer_swapped_for_code_in_the_head_is_refused_even_when_resealed(bundle, tmp_path):
    """The GloVe head's Normalizer is plain arithmetic. A head.skops with a function in its place (here
    os.system) is refused by skops' allowlist before anything is rebuilt, though its digest is recomputed
    and head.npz still lies beside it."""
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from pipeline.bundle.bundle import HEAD_FILE, head_identity
    from pipeline.encoders.base import sha256_file

    path, cache = bundle
    head = Bundle.load(path, cache_dir=cache).estimator
    assert head_identity(head) == ["normalize:Normalizer", "clf:LogisticRegression"]
    sio.dump(Pipeline([("normalize", FunctionTransformer(os.system)), head.steps[-1]]), path / HEAD_FILE)
    edit(path, lambda m: m["files"].update({HEAD_FILE: sha256_file(path / HEAD_FILE)}), reseal=True)
    with mock.patch("os.system") as system:
        line = one_line_error(predict(path, cache))
    assert "outside the trusted allowlist" in line and "system" in line and str(path / HEAD_FILE) in line
    system.assert_not_called()
