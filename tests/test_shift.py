"""The domain-shift check: a bundle keeps a sample of its training vectors; evaluate/predict tell RT's own
test split (no warning) from a real shifted target (tweet-like texts from the vaderSentiment sdist:
warning), carry the figure in --json, and decline prior adaptation there, saying why. Bundles made
before the check still load and predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_reviews_jsonl

from pipeline.bundle.bundle import Bundle
from pipeline.cli import main
from pipeline.bundle.bundle import SAMPLE_FILE
from pipeline.predict.shift import ALPHA, SAMPLE, THRESHOLD, folds, keep_sample, out_of_fold_ridge, two_sample_auc

OLD_BUNDLE = Path(__file__).parent / "data" / "bundle-before-shift-check"  # written by `fit` of review-transfer 0.3.0


@pytest.fixture(scope="module")
def tweets(tmp_path_factory) -> str:
    """1,000 rows of the vader-tweets target (68% positive) as JSONL."""
    from benchmarks.targets import load_target

    ds = load_target("vader-tweets")
    return write_reviews_jsonl(tmp_path_factory.mktemp("tweets") / "tweets.jsonl", ds, range(1000))


@pytest.fixture(scope="module")
def rt_test(rt_split, tmp_path_factory) -> str:
    test = rt_split[1]
    return write_reviews_jsonl(tmp_path_factory.mktemp("rt-test") / "rt_test.jsonl", test, range(1000))


def _evaluate(bundle: Path, source: str, cache: Path, *extra: str) -> dict:
    result = CliRunner().invoke(main, ["evaluate", str(bundle), source, "--json", "--cache-dir", str(cache), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_bundle_keeps_a_float16_sample_of_its_training_vectors(glove_bundle):
    path, cache = glove_bundle
    bundle = Bundle.load(path, cache_dir=cache)
    assert (path / SAMPLE_FILE).is_file() and SAMPLE_FILE in bundle.manifest["files"]
    assert bundle.shift_sample.shape == (SAMPLE, 50) and bundle.shift_sample.dtype == np.float16
    assert bundle.manifest["shift"] == {"file": SAMPLE_FILE, "rows": SAMPLE, "of": 1000}


def test_rt_test_passes_and_a_shifted_target_warns_in_json(glove_bundle, rt_test, tweets):
    path, cache = glove_bundle
    own = _evaluate(path, rt_test, cache)["domain_shift"]
    other = _evaluate(path, tweets, cache)["domain_shift"]
    assert own["auc"] < THRESHOLD and own["warning"] is False, own
    assert other["auc"] > THRESHOLD and other["warning"] is True, other
    assert own["n_train"] == own["n_target"] == SAMPLE and own["threshold"] == THRESHOLD
    assert other["line"].startswith("WARNING domain shift: a classifier tells these texts from the training texts")
    assert "`review-transfer retarget` the bundle" in other["line"] and "\n" not in other["line"]


def test_adaptation_is_declined_where_label_shift_fails(glove_bundle, tweets):
    path, cache = glove_bundle
    scores = _evaluate(path, tweets, cache, "--adapt-prior")
    prior = scores["prior"]
    assert prior["target"] is None and not prior["decision"]["adapted"]
    assert "unlike the training texts (shift AUC" in prior["line"]
    assert "not adapting: pass their positive rate with --prior" in prior["line"] and "retarget" in prior["line"]
    assert scores["accuracy"] == prior["accuracy_unadapted"]  # the plain posteriors were kept
    result = CliRunner().invoke(main, ["evaluate", str(path), tweets, "--adapt-prior", "--cache-dir", str(cache)])
    assert "positive rate: training 0.500, not adapted, true 0.6" in result.output
    assert "WARNING domain shift" in result.output


def test_a_bundle_made_before_the_check_still_loads_predicts_and_says_why_not(rt_test, tmp_path):
    path = shutil.copytree(OLD_BUNDLE, tmp_path / "old")
    cache = tmp_path / "cache"
    bundle = Bundle.load(path, cache_dir=cache, allow_legacy=True)  # verifies files, allowlist and the encoder fingerprint
    assert bundle.shift_sample is None and "shift" not in bundle.manifest
    scores = _evaluate(path, rt_test, cache, "--adapt-prior", "--allow-legacy")
    assert scores["domain_shift"] == {"auc": None, "warning": None, "reason": scores["domain_shift"]["reason"]}
    assert "keeps no training sample" in scores["domain_shift"]["reason"]
    assert not scores["prior"]["decision"]["adapted"] and "did not run" in scores["prior"]["line"]
    given = _evaluate(path, rt_test, cache, "--prior", "0.3", "--allow-legacy")["prior"]
    assert given["target"] == 0.3 and not given["estimated"]


def test_the_check_needs_enough_texts_and_is_null_on_identical_distributions():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 20)).astype(np.float32)
    assert two_sample_auc(X[:1000], X[1000:1029]) is None  # under MIN_TEXTS
    same = two_sample_auc(keep_sample(X[:1500]), X[1500:])
    assert abs(same.auc - 0.5) < 0.05 and not same.warning
    moved = two_sample_auc(X[:1500], X[1500:] + 0.3)
    assert moved.auc > THRESHOLD and moved.warning
    wide = rng.normal(size=(1000, 100)).astype(np.float32)
    copies = two_sample_auc(wide, wide)  # a bundle scored on its own training texts
    assert copies.auc < 0.4 and "many of these texts are the training texts themselves" in copies.line()
    assert "themselves" not in same.line()


def test_the_ridge_is_scikit_learns_on_the_same_folds(glove_xy):
    """The check's numpy ridge gives scikit-learn's StandardScaler + RidgeClassifier decision values, fold for
    fold, on GloVe vectors of RT pool texts against RT test texts."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import PredefinedSplit, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, X_train, _, X_test = glove_xy
    X = np.vstack([X_train, X_test[:300]]).astype(np.float64)
    y = np.r_[np.zeros(300, dtype=np.int64), np.ones(300, dtype=np.int64)]
    fold = folds(y, np.random.default_rng(0))
    assert np.bincount(fold).tolist() == [120] * 5 and all(np.bincount(fold[y == 1]) == 60)
    expected = cross_val_predict(make_pipeline(StandardScaler(), RidgeClassifier(alpha=ALPHA)), X, y,
                                 cv=PredefinedSplit(fold), method="decision_function")
    assert np.allclose(out_of_fold_ridge(X, y, fold), expected, atol=1e-8)
