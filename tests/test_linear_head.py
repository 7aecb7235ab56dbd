"""Linear heads as plain arrays (head.npz): same probabilities as scikit-learn, a predict that imports
neither scikit-learn nor skops, and the same trust verdict as the skops head. Real heads, real GloVe bundles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pipeline.bundle.bundle import MANIFEST, Bundle, head_identity
from pipeline.heads.registry import HEADS, FitOptions, build_head, fit_head
from pipeline.heads.linear import (CLASSIFIERS, FORMAT, LINEAR_FILE, NORMALIZER, PLAIN_NODES, TOLERANCE, LinearHead,
                                  LinearHeadError, _known, _nodes, from_estimator, load, plain_skops)
from pipeline.bundle.manifest import HEAD_NAMES, seal
from pipeline.fit.train import FitPlan, iter_fit

LINEAR = [name for name in CLASSIFIERS if name in HEADS]

# Run in a fresh interpreter: any import of scikit-learn, skops, scipy, pandas or h5py fails.
NO_SKLEARN = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sklearn", "skops", "scipy", "pandas", "h5py", "torch"):
            raise ImportError(f"blocked import of {name}")
sys.meta_path.insert(0, Block())
from pipeline.cli import main
main()
"""


def _data(unit: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(120, 12)) + rng.normal(size=12)).astype(np.float32)
    if unit:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, (X[:, 0] + 0.3 * rng.normal(size=120) > X[:, 0].mean()).astype(np.int64)


def test_head_names_match_the_registry():
    assert HEAD_NAMES == tuple(HEADS)


@pytest.mark.parametrize("unit", [False, True])
@pytest.mark.parametrize("name", LINEAR)
def test_linear_heads_predict_like_scikit_learn_and_round_trip(name, unit, tmp_path):
    X, y = _data(unit)
    estimator = fit_head(name, X, y, FitOptions(class_weight="balanced"), selection=None).estimator
    head = from_estimator(estimator, name, head_identity(estimator), X)
    assert head is not None
    X_new, _ = _data(unit, seed=1)
    expected = estimator.predict_proba(X_new)
    # scikit-learn scales float32 rows in float32 (and SGD keeps float32 weights); these arrays are float64
    np.testing.assert_allclose(head.predict_proba(X_new), expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(head.predict(X_new), (expected[:, 1] >= 0.5).astype(int))
    head.save(tmp_path / LINEAR_FILE)
    loaded = load(tmp_path / LINEAR_FILE, name)
    np.testing.assert_array_equal(loaded.predict_proba(X_new), head.predict_proba(X_new))
    assert loaded.identity == tuple(head_identity(estimator))


@pytest.mark.parametrize("name", ["finetune-head", "finetune-setfit"])
def test_fine_tuned_logistic_heads_get_arrays_and_mlp_heads_do_not(name):
    """As pipeline.finetune saves them: Pipeline([("clf", LogisticRegression | MLPClassifier)]) on unit rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline

    X, y = _data(True)
    logistic = Pipeline([("clf", LogisticRegression(max_iter=1000))]).fit(X, y)
    head = from_estimator(logistic, name, head_identity(logistic), X)
    np.testing.assert_allclose(head.predict_proba(X), logistic.predict_proba(X), rtol=0, atol=TOLERANCE)
    mlp = Pipeline([("clf", MLPClassifier((8,), max_iter=50))]).fit(X, y)
    assert from_estimator(mlp, name, head_identity(mlp), X) is None


@pytest.mark.parametrize("name", list(HEADS))
def test_only_linear_heads_get_arrays(name):
    X, y = _data(False)
    estimator = build_head(name).fit(X, y)
    head = from_estimator(estimator, name, head_identity(estimator), X)
    assert (head is not None) == (name in CLASSIFIERS)
    assert from_estimator(estimator, "knn", head_identity(estimator), X) is None  # a name it does not match


def test_every_linear_head_structure_is_known():
    for name in LINEAR:
        for unit in (False, True):
            assert _known(name, tuple(head_identity(build_head(name, unit=unit)))), (name, unit)


@pytest.mark.parametrize("name", LINEAR)
def test_the_skops_files_of_linear_heads_hold_only_plain_nodes(name, tmp_path):
    """PLAIN_NODES covers every node these heads are saved with; if scikit-learn adds one, this fails
    (and bundles fall back to skops, slower but as safe)."""
    import zipfile

    X, y = _data(False)
    sio.dump(fit_head(name, X, y, selection=None).estimator, tmp_path / "h.skops")
    nodes = set(_nodes(json.loads(zipfile.ZipFile(tmp_path / "h.skops").read("schema.json"))))
    assert nodes <= PLAIN_NODES, nodes - PLAIN_NODES
    assert plain_skops(tmp_path / "h.skops")
    sio.dump(make_pipeline(FunctionTransformer(os.system)), tmp_path / "evil.skops")
    assert not plain_skops(tmp_path / "evil.skops")
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    assert not plain_skops(tmp_path / "junk.skops")


def test_a_damaged_or_mismatched_file_is_refused(tmp_path):
    X, y = _data(False)
    estimator = fit_head("logreg", X, y, selection=None).estimator
    from_estimator(estimator, "logreg", head_identity(estimator), X).save(tmp_path / LINEAR_FILE)
    with pytest.raises(LinearHeadError, match="head.name is 'ridge'.*not that head"):
        load(tmp_path / LINEAR_FILE, "ridge")
    with np.load(tmp_path / LINEAR_FILE) as z:
        arrays = dict(z)
    np.savez(tmp_path / "nan.npz", **{**arrays, "coef": np.full_like(arrays["coef"], np.nan)})
    with pytest.raises(LinearHeadError, match="malformed"):
        load(tmp_path / "nan.npz", "logreg")
    np.savez(tmp_path / "objects.npz", **{**arrays, "coef": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(LinearHeadError, match="not a linear head file"):  # never unpickled
        load(tmp_path / "objects.npz", "logreg")


@pytest.mark.parametrize("unit", [True, False])
def test_only_normalised_heads_need_format_2_and_a_newer_format_is_refused(unit, tmp_path):
    """A head without a Normalizer stays format 1, so versions from before format 2 still read it; a
    file from a future format asks for an upgrade instead of being misread."""
    X, y = _data(unit)
    estimator = fit_head("logreg", X, y, selection=None).estimator
    head = from_estimator(estimator, "logreg", head_identity(estimator), X)
    assert head.normalizes == (not unit)
    head.save(tmp_path / LINEAR_FILE)
    with np.load(tmp_path / LINEAR_FILE) as z:
        arrays = dict(z)
    assert int(arrays["format"]) == (1 if unit else 2)
    np.savez(tmp_path / "newer.npz", **{**arrays, "format": np.int64(FORMAT + 1)})
    with pytest.raises(LinearHeadError, match="newer review-transfer"):
        load(tmp_path / "newer.npz", "logreg")


@pytest.fixture(scope="module")
def linear_bundles(rt_split, tmp_path_factory):
    """{head: (saved bundle dir, fitted Bundle)} for logreg, ridge, linear-svm and knn on 200 GloVe-embedded RT labels."""
    from pipeline.data.dataset import sample_budget

    pool, _ = rt_split
    root = tmp_path_factory.mktemp("linear")
    bundles = iter_fit(sample_budget(pool, 200, seed=0), FitPlan(heads=["logreg", "ridge", "linear-svm", "knn"]),
                       encoder="glove-6b-50d", cache_dir=root / "cache")
    return {b.manifest["head"]["name"]: (b.save(root / b.manifest["head"]["name"]), b) for b in bundles}, root / "cache"


def test_bundles_of_linear_heads_predict_without_scikit_learn(linear_bundles, rt_split):
    bundles, cache = linear_bundles
    texts = rt_split[1].texts[:5]
    for name, (path, fitted) in bundles.items():
        assert (path / LINEAR_FILE).is_file() == (name != "knn")
        assert isinstance(Bundle.load(path, cache_dir=cache).head, LinearHead) == (name != "knn")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for name in ("logreg", "ridge"):  # a logistic and a Platt-calibrated head, in fresh processes
        path, fitted = bundles[name]
        out = subprocess.run([sys.executable, "-c", NO_SKLEARN, "predict", str(path), *texts, "--cache-dir", str(cache)],
                             capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        p = [float(line.split("\t")[1]) for line in out.stdout.splitlines()]
        np.testing.assert_allclose(p, fitted.predict_proba(texts)[:, 1], atol=5e-4 + TOLERANCE)  # printed to 3 decimals


def test_a_bundle_without_arrays_or_with_an_unplain_head_loads_through_skops(linear_bundles, tmp_path):
    import shutil

    bundles, cache = linear_bundles
    path = shutil.copytree(bundles["ridge"][0], tmp_path / "b")
    assert isinstance(Bundle.load(path, cache_dir=cache).head, LinearHead)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"].pop(LINEAR_FILE)  # as bundles saved before head.npz
    (path / LINEAR_FILE).unlink()
    (path / MANIFEST).write_text(json.dumps(seal(manifest)))
    loaded = Bundle.load(path, cache_dir=cache)
    assert not isinstance(loaded.head, LinearHead) and loaded.estimator is loaded.head


def test_normalised_glove_heads_carry_their_normalizer_in_head_npz(linear_bundles, rt_split):
    """Pooled GloVe rows are not of unit length, so the linear heads put a Normalizer in front; head.npz
    (format 2) carries it, and the loaded bundle predicts as the fitted scikit-learn head does, a row of
    zeros (a text with no known word) included."""
    bundles, cache = linear_bundles
    texts = rt_split[1].texts[:50]
    for name in ("logreg", "ridge", "linear-svm"):
        path, fitted = bundles[name]
        assert head_identity(fitted.head) == [NORMALIZER, CLASSIFIERS[name]]
        with np.load(path / LINEAR_FILE) as z:
            assert int(z["format"]) == 2
        loaded = Bundle.load(path, cache_dir=cache)
        assert isinstance(loaded.head, LinearHead) and loaded.head.normalizes
        np.testing.assert_allclose(loaded.predict_proba(texts), fitted.predict_proba(texts), rtol=0, atol=TOLERANCE)
        zero = np.zeros((1, 50), dtype=np.float32)
        np.testing.assert_allclose(loaded.head.predict_proba(zero), fitted.head.predict_proba(zero),
                                   rtol=0, atol=TOLERANCE)
        assert loaded.estimator is not loaded.head  # head.skops, rebuilt through the allowlist on demand
        np.testing.assert_allclose(loaded.estimator.predict_proba(zero), fitted.head.predict_proba(zero))
