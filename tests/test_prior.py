"""Class-prior adaptation: exact re-weighting, EM on recalibrated MiniLM + logreg probabilities
recovering the positive rate of RT test resampled to 20% and 80% positive, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import write_reviews_csv
from pipeline.data import budget_indices
from pipeline.prior import Calibration, adapt, adjust, check_prior, estimate_prior, fit_calibration

BUDGET = 1000
SHIFTED_SIZE = 1000


@pytest.fixture(scope="session")
def rt_probabilities(rt_split, tmp_path_factory):
    """MiniLM + logreg fitted on a balanced budget of the RT pool: its calibration, training prior, and
    probabilities of positive on the RT test split (one MiniLM encode of budget + test, in a tmp cache)."""
    from pipeline.cache import EmbeddingCache
    from pipeline.encoders import get_encoder
    from pipeline.heads import fit_head

    pool, test = rt_split
    idx = budget_indices(pool, BUDGET, 0)
    train_texts, y_train = [pool.texts[i] for i in idx], pool.labels[idx]
    groups = [pool.groups[i] for i in idx]
    vectors = EmbeddingCache(tmp_path_factory.mktemp("prior_cache")).vectors(get_encoder("minilm"), train_texts + test.texts)
    X_train, X_test = vectors[:BUDGET], vectors[BUDGET:]
    head = fit_head("logreg", X_train, y_train, groups=groups, seed=0).estimator
    calibration = fit_calibration(head, X_train, y_train, groups=groups, seed=0)
    return calibration, float(y_train.mean()), head.predict_proba(X_test)[:, 1], test.labels


def _resample(labels: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Indices of SHIFTED_SIZE rows of ``labels`` with exactly ``rate`` positives."""
    rng = np.random.default_rng(seed)
    k = int(round(rate * SHIFTED_SIZE))
    pos = rng.choice(np.flatnonzero(labels == 1), k, replace=False)
    neg = rng.choice(np.flatnonzero(labels == 0), SHIFTED_SIZE - k, replace=False)
    return np.concatenate([pos, neg])


# ------------------------------------------------------------------------------------------ on RT
@pytest.mark.parametrize("rate", [0.2, 0.8])
def test_em_recovers_a_shifted_prior_and_adaptation_helps(rt_probabilities, rate):
    calibration, train_prior, p, y = rt_probabilities
    assert train_prior == 0.5  # a balanced budget
    for seed in range(3):
        sel = _resample(y, rate, seed)
        adapted = adapt(p[sel], train_prior, calibration=calibration)
        assert adapted.estimated and abs(adapted.prior - rate) <= 0.05, (seed, adapted.prior)
        before = ((p[sel] >= 0.5) == y[sel]).mean()
        after = ((adapted.p_pos >= 0.5) == y[sel]).mean()
        assert after >= before, (seed, before, after)


def test_known_prior_gives_at_least_the_unadapted_accuracy(rt_probabilities):
    calibration, train_prior, p, y = rt_probabilities
    sel = _resample(y, 0.2, 7)
    known = adapt(p[sel], train_prior, target_prior=0.2, calibration=calibration)
    assert not known.estimated and known.prior == 0.2
    assert ((known.p_pos >= 0.5) == y[sel]).mean() >= ((p[sel] >= 0.5) == y[sel]).mean()


def test_recalibration_improves_held_out_log_loss(rt_probabilities):
    from sklearn.metrics import log_loss

    calibration, _, p, y = rt_probabilities
    assert calibration.a > 0  # monotone: recalibration never changes the ranking
    assert log_loss(y, calibration.apply(p)) < log_loss(y, p)
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    assert Calibration.from_dict(None) == Calibration()


# ------------------------------------------------------------------------------------------ exact parts
def test_adjust_is_bayes_rule_and_invertible():
    p = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(adjust(p, 0.5, 0.5), p)
    # at p = 0.5 the odds become the prior odds ratio
    assert adjust(np.array([0.5]), 0.5, 0.2)[0] == pytest.approx(0.2)
    np.testing.assert_allclose(adjust(adjust(p, 0.5, 0.3), 0.3, 0.5), p)


def test_em_finds_the_prior_of_calibrated_synthetic_scores():
    rng = np.random.default_rng(0)
    y = (rng.random(20_000) < 0.3).astype(int)
    score = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
    p_balanced = 1 / (1 + np.exp(-2 * score))  # the exact posterior at prior 0.5 for these two Gaussians
    assert estimate_prior(p_balanced, 0.5) == pytest.approx(0.3, abs=0.01)


def test_an_estimate_at_the_edge_is_flagged():
    assert "too weak to estimate" in adapt(np.full(50, 0.01), 0.5).describe()
    assert "WARNING" not in adapt(np.full(50, 0.3), 0.5, target_prior=0.3).describe()


@pytest.mark.parametrize("bad", [0, 1, -0.2, 1.5])
def test_prior_outside_zero_one_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"--prior must be a positive rate strictly between 0 and 1"):
        check_prior(bad)


def test_calibration_of_a_tiny_sample_is_the_identity():
    from sklearn.linear_model import LogisticRegression

    X, y = np.random.default_rng(0).normal(size=(3, 4)), np.array([0, 1, 1])
    assert fit_calibration(LogisticRegression(), X, y) == Calibration()


# ------------------------------------------------------------------------------------------ compare
def test_compare_reports_adapted_and_unadapted_side_by_side(rt, rt_split, tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main

    test = rt_split[1]
    source = write_reviews_csv(tmp_path / "rt_small.csv", rt, np.random.default_rng(0).choice(len(rt), 1000, replace=False))
    shifted = np.concatenate([np.flatnonzero(test.labels == 1)[:80], np.flatnonzero(test.labels == 0)[:320]])
    test_set = write_reviews_csv(tmp_path / "shifted.csv", test, shifted)
    out = tmp_path / "report"
    args = ["compare", source, "--group-col", "movie", "--encoder", "glove-6b-50d", "--budgets", "64",
            "--seeds", "2", "--test-set", test_set, "--no-plot", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    result = CliRunner().invoke(main, [*args, "--adapt-prior"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        m = row["metrics"]["shifted"]
        assert m["true_prior"] == 0.2 and 0 < m["estimated_prior"] < 1 and 0 <= m["accuracy_adapted"] <= 1
        assert "accuracy_adapted" in row["metrics"]["test"]
    report = (out / "report.md").read_text()
    assert "## Class-prior adaptation on `shifted`" in report and "| 64 | `glove-6b-50d+logreg` | 0.200 |" in report
    # the same --out without --adapt-prior would mix rows with and without adapted scores: refused
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "--adapt-prior" in again.output


# ------------------------------------------------------------------------------------------ predict, evaluate
def test_prior_outside_zero_one_is_a_clear_cli_error(tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main

    for command in (["predict", str(tmp_path), "A triumph."], ["evaluate", str(tmp_path), "rt"]):
        result = CliRunner().invoke(main, [*command, "--prior", "1.5"])
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--prior'" in result.output and "strictly between 0 and 1" in result.output


def test_bundle_records_its_prior_and_predict_evaluate_adapt(rt, rt_split, tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main
    from pipeline.train import fit

    bundle = fit(rt, encoder="glove-6b-50d", budget=1000, cache_dir=tmp_path / "c", out=tmp_path / "b")
    assert bundle.manifest["prior"]["train"] == 0.5 and bundle.manifest["prior"]["calibration"]["a"] > 0
    test = rt_split[1]
    shifted = write_reviews_csv(tmp_path / "shifted.csv", test, np.concatenate(
        [np.flatnonzero(test.labels == 1)[:80], np.flatnonzero(test.labels == 0)[:320]]))
    common = ["--cache-dir", str(tmp_path / "c")]

    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "b"), shifted, "--adapt-prior", "--json", *common])
    assert result.exit_code == 0, result.output
    prior = json.loads(result.stdout)["prior"]
    assert prior["estimated"] and prior["train"] == 0.5 and prior["true"] == 0.2 and 0.05 < prior["target"] < 0.5

    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "b"), shifted, "--prior", "0.2", *common])
    assert result.exit_code == 0, result.output
    assert "positive rate: training 0.500, given 0.200, true 0.200; accuracy without adaptation" in result.output

    labelled = tmp_path / "labelled.jsonl"
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "b"), "--input", shifted, "--adapt-prior",
                                       "--output", str(labelled), *common])
    assert result.exit_code == 0, result.output
    assert "class prior: positive rate estimated by EM at 0." in result.output and "WARNING" not in result.output
    rows = [json.loads(line) for line in labelled.read_text().splitlines()]
    assert len(rows) == 400 and np.mean([r["p_positive"] >= 0.5 for r in rows]) < 0.5  # re-weighted towards negative

    both = CliRunner().invoke(main, ["predict", str(tmp_path / "b"), "Fine.", "--prior", "0.3", "--adapt-prior", *common])
    assert both.exit_code == 1 and "not both" in both.output
