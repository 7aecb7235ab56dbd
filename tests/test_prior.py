"""Class-prior adaptation: exact re-weighting; on RT test resampled to 20% and 80% positive (label shift
only) EM and BBSE agree and the guard adapts and gains; collapsing, disagreeing or single estimates are
declined with the reason; clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import write_reviews_jsonl
from pipeline.data.dataset import budget_indices
from pipeline.predict.prior import Calibration, Confusion, PriorModel, adjust, check_prior, estimate_prior
from pipeline.predict.shift import keep_sample, two_sample_auc

BUDGET = 1000
SHIFTED_SIZE = 1000


@pytest.fixture(scope="session")
def rt_probabilities(rt_split, minilm_cached):
    """MiniLM + logreg fitted on a balanced budget of the RT pool: its prior model (training prior,
    out-of-fold calibration and confusion) and probabilities of positive on the RT test split (one MiniLM
    encode of budget + test, in the session's MiniLM cache)."""
    from pipeline.heads.registry import FitOptions, fit_head

    pool, test = rt_split
    idx = budget_indices(pool, BUDGET, 0)
    train_texts, y_train = [pool.texts[i] for i in idx], pool.labels[idx]
    groups = [pool.groups[i] for i in idx]
    encoder, cache = minilm_cached
    vectors = cache.vectors(encoder, train_texts + test.texts)
    X_train, X_test = vectors[:BUDGET], vectors[BUDGET:]
    head = fit_head("logreg", X_train, y_train, FitOptions(groups=groups, seed=0)).estimator
    model = PriorModel.fit(head, X_train, y_train, groups=groups, seed=0)
    return model, head.predict_proba(X_test)[:, 1], test.labels, keep_sample(X_train), X_test


def _resample(labels: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Indices of SHIFTED_SIZE rows of ``labels`` with exactly ``rate`` positives."""
    rng = np.random.default_rng(seed)
    k = int(round(rate * SHIFTED_SIZE))
    pos = rng.choice(np.flatnonzero(labels == 1), k, replace=False)
    neg = rng.choice(np.flatnonzero(labels == 0), SHIFTED_SIZE - k, replace=False)
    return np.concatenate([pos, neg])


# ------------------------------------------------------------------------------------------ on RT
@pytest.mark.parametrize("rate", [0.2, 0.8])
def test_label_shift_only_adapts_and_gains(rt_probabilities, rate):
    model, p, y, sample, X_test = rt_probabilities
    assert model.train == 0.5 and model.confusion.tpr - model.confusion.fpr > 0.3  # a balanced budget, a real signal
    gains = []
    for seed in range(3):
        sel = _resample(y, rate, seed)
        shift = two_sample_auc(sample, X_test[sel]).to_dict()
        assert not shift["warning"], shift  # same site: label shift only
        adapted = model.adapt(p[sel], shift=shift)
        assert adapted.decision.adapt, adapted.decision.reason
        assert "estimates agree and exclude training 0.50" in adapted.describe()
        em, bbse, difference = adapted.decision.estimates
        assert abs(em.value - rate) <= 0.05 and difference.covers(0.0), adapted.describe()
        assert not (em.covers(0.5) or bbse.covers(0.5))
        gains.append(((adapted.p_pos >= 0.5) == y[sel]).mean() - ((p[sel] >= 0.5) == y[sel]).mean())
    assert np.mean(gains) >= 0.05, gains


def test_known_prior_gives_at_least_the_unadapted_accuracy(rt_probabilities):
    model, p, y, _, _ = rt_probabilities
    sel = _resample(y, 0.2, 7)
    known = model.adapt(p[sel], 0.2)
    assert not known.estimated and known.prior == 0.2 and known.decision is None
    assert ((known.p_pos >= 0.5) == y[sel]).mean() >= ((p[sel] >= 0.5) == y[sel]).mean()


def test_recalibration_improves_held_out_log_loss(rt_probabilities):
    from sklearn.metrics import log_loss

    model, p, y, _, _ = rt_probabilities
    assert model.calibration.a > 0  # monotone: recalibration never changes the ranking
    assert log_loss(y, model.calibration.apply(p)) < log_loss(y, p)
    assert Calibration.from_dict(model.calibration.to_dict()) == model.calibration
    assert Calibration.from_dict(None) == Calibration()
    assert PriorModel.from_manifest({"prior": model.to_dict()}).confusion == Confusion.from_dict(model.confusion.to_dict())


# ------------------------------------------------------------------------------------------ the guard
MODEL = PriorModel(0.5, Calibration(), Confusion(tpr=0.8, fpr=0.2, n_pos=500, n_neg=500))
ALIKE = {"auc": 0.55, "warning": False}  # a domain-shift check that found the texts like the training texts


def test_a_collapsing_estimate_is_never_applied_silently():
    p = np.random.default_rng(0).uniform(0.001, 0.02, 500)  # every text confidently negative
    adapted = MODEL.adapt(p, shift=ALIKE)
    assert not adapted.decision.adapt and adapted.prior is None
    np.testing.assert_array_equal(adapted.p_pos, p)  # the plain posteriors, untouched
    assert "collapses to 0" in adapted.describe() and "not adapting" in adapted.describe()
    assert adapted.decision.to_dict()["adapted"] is False


def test_disagreeing_estimates_are_declined_with_both_figures():
    # 60% predicted positive means 67% positive for BBSE; the posteriors (0.65 and 0.2) fit a third for EM
    p = np.concatenate([np.full(600, 0.65), np.full(400, 0.2)])
    adapted = MODEL.adapt(p, shift=ALIKE)
    assert not adapted.decision.adapt
    assert adapted.describe().startswith("class prior: estimates disagree: EM 0.3") and "BBSE 0.67" in adapted.describe()


def test_no_shift_a_weak_model_and_a_bundle_without_confusion_are_declined():
    rng = np.random.default_rng(2)
    y = rng.random(2000) < 0.5
    p = np.clip(np.where(y, rng.normal(0.75, 0.1, 2000), rng.normal(0.25, 0.1, 2000)), 0.01, 0.99)
    assert "no clear prior shift: training 0.50 is inside EM" in MODEL.adapt(p, shift=ALIKE).describe()
    weak = PriorModel(0.5, Calibration(), Confusion(0.55, 0.45, 500, 500))
    assert "too weak to estimate a prior" in weak.adapt(p, shift=ALIKE).describe()
    old = PriorModel.from_manifest({"prior": {"train": 0.5, "calibration": {"a": 1.0, "b": 0.0}}})  # older bundles
    assert old.confusion is None and "one estimate only" in old.adapt(p, shift=ALIKE).describe()


def test_a_model_whose_tpr_equals_its_fpr_is_declined_not_a_crash():
    # a head fitted on 16 labels can call every out-of-fold text one class: TPR = FPR, BBSE divides by zero
    p = np.random.default_rng(4).uniform(0.3, 0.7, 500)
    blind = PriorModel(0.5, Calibration(), Confusion(1.0, 1.0, 8, 8))
    adapted = blind.adapt(p, shift=ALIKE)
    assert not adapted.decision.adapt and "too weak to estimate a prior" in adapted.describe()


def test_texts_unlike_the_training_texts_or_an_unchecked_shift_are_declined():
    # scores from the model's own world (TPR 0.8, FPR 0.2, exact posteriors), 30% positive: the estimates agree
    rng = np.random.default_rng(3)
    score = rng.normal(np.where(rng.random(2000) < 0.3, 0.8416, -0.8416), 1.0)
    p = 1 / (1 + np.exp(-2 * 0.8416 * score))
    assert MODEL.adapt(p, shift=ALIKE).decision.adapt
    shifted = MODEL.adapt(p, shift={"auc": 0.97, "warning": True})
    assert not shifted.decision.adapt and "unlike the training texts (shift AUC 0.97)" in shifted.describe()
    unchecked = MODEL.adapt(p, shift={"auc": None, "warning": None, "reason": "too few texts"})
    assert not unchecked.decision.adapt and "did not run (too few texts)" in unchecked.describe()


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
    # the same fixed point as Saerens' EM iterations
    prior = 0.5
    for _ in range(2000):
        prior = adjust(p_balanced, 0.5, prior).mean()
    assert estimate_prior(p_balanced, 0.5) == pytest.approx(prior, abs=1e-5)


@pytest.mark.parametrize("bad", [0, 1, -0.2, 1.5])
def test_prior_outside_zero_one_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"--prior must be a positive rate strictly between 0 and 1"):
        check_prior(bad)


def test_a_tiny_sample_gets_the_identity_calibration_and_no_confusion():
    from sklearn.linear_model import LogisticRegression

    X, y = np.random.default_rng(0).normal(size=(3, 4)), np.array([0, 1, 1])
    assert PriorModel.fit(LogisticRegression(), X, y) == PriorModel(2 / 3)



def test_a_known_prior_keeps_the_ranking_where_the_recalibration_found_no_signal():
    """64 labels whose out-of-fold scores carry no signal fit a recalibration of slope 0 (one probability for
    every text): a given rate then re-weights the head's own probabilities, not that constant."""
    from sklearn.linear_model import LogisticRegression

    X, y = np.random.default_rng(1).normal(size=(64, 5)), np.repeat([0, 1], 32)  # features of pure noise
    model = PriorModel.fit(LogisticRegression(), X, y)
    assert model.calibration.a == 0.0
    p = np.linspace(0.2, 0.9, 8)
    np.testing.assert_allclose(model.adapt(p, 0.15).p_pos, adjust(p, 0.5, 0.15))

# ------------------------------------------------------------------------------------------ compare
def test_compare_reports_adapted_and_unadapted_side_by_side(rt, rt_split, tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main

    test = rt_split[1]
    source = write_reviews_jsonl(tmp_path / "rt_small.jsonl", rt, np.random.default_rng(0).choice(len(rt), 1000, replace=False))
    shifted = np.concatenate([np.flatnonzero(test.labels == 1)[:80], np.flatnonzero(test.labels == 0)[:320]])
    test_set = write_reviews_jsonl(tmp_path / "shifted.jsonl", test, shifted)
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
        assert isinstance(m["adapted"], bool) and (
            "not adapting" in m["decision"] or m["decision"].endswith(f"{m['estimated_prior']:.3f}"))
        if not m["adapted"]:  # declined: the plain posteriors, so the plain accuracy
            assert m["accuracy_adapted"] == m["accuracy"]
        assert "accuracy_adapted" in row["metrics"]["test"]
        assert 0.3 < m["domain_shift"]["auc"] < 0.75 and m["domain_shift"]["warning"] is False  # RT vs RT
    report = (out / "report.md").read_text()
    assert "## Class-prior adaptation on `shifted`" in report and "| 64 | `glove-6b-50d+logreg` | 0.200 |" in report
    assert "seeds | " in report and "## Domain shift" in report and "| `shifted` | `glove-6b-50d` |" in report
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


def test_bundle_records_its_prior_and_predict_evaluate_adapt(glove_bundle, rt_split, tmp_path):
    from click.testing import CliRunner

    from pipeline.bundle.bundle import Bundle
    from pipeline.cli import main

    path, cache = glove_bundle
    prior = Bundle.load(path, cache_dir=cache).manifest["prior"]
    assert prior["train"] == 0.5 and prior["calibration"]["a"] > 0 and prior["confusion"]["n_pos"] == 500
    test = rt_split[1]
    shifted = write_reviews_jsonl(tmp_path / "shifted.jsonl", test, np.concatenate(
        [np.flatnonzero(test.labels == 1)[:150], np.flatnonzero(test.labels == 0)[:600]]))
    common = ["--cache-dir", str(cache)]

    result = CliRunner().invoke(main, ["evaluate", str(path), shifted, "--adapt-prior", "--json", *common])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    prior, decision = scores["prior"], scores["prior"]["decision"]
    assert prior["estimated"] and prior["train"] == 0.5 and prior["true"] == 0.2
    assert decision["adapted"] and [e["method"] for e in decision["estimates"]] == ["EM", "BBSE", "EM - BBSE"], decision
    assert 0.1 < prior["target"] < 0.3 and scores["accuracy"] > prior["accuracy_unadapted"] + 0.03
    assert scores["domain_shift"]["warning"] is False

    result = CliRunner().invoke(main, ["evaluate", str(path), shifted, "--prior", "0.2", *common])
    assert result.exit_code == 0, result.output
    assert "positive rate: training 0.500, given 0.200, true 0.200; accuracy without adaptation" in result.output

    labelled = tmp_path / "labelled.jsonl"
    result = CliRunner().invoke(main, ["predict", str(path), "--input", shifted, "--adapt-prior",
                                       "--output", str(labelled), *common])
    assert result.exit_code == 0, result.output
    assert "class prior: estimates agree and exclude training 0.50: EM 0." in result.output
    assert "domain shift: a classifier tells these texts from the training texts with AUC 0." in result.output
    rows = [json.loads(line) for line in labelled.read_text().splitlines()]
    assert len(rows) == 750 and np.mean([r["p_positive"] >= 0.5 for r in rows]) < 0.5  # re-weighted towards negative

    both = CliRunner().invoke(main, ["predict", str(path), "Fine.", "--prior", "0.3", "--adapt-prior", *common])
    assert both.exit_code == 1 and "not both" in both.output


def test_the_prior_model_of_a_knn_over_every_training_row_fits(glove_xy):
    """`fit --budget 32 --head knn` picks k = every training row; the prior model's out-of-fold refits
    have fewer rows and must use every row of theirs (it used to fail asking for 32 neighbours of 28)."""
    from pipeline.heads.registry import build_head

    train, X, _, _ = glove_xy
    idx = budget_indices(train, 32, 0)
    knn = build_head("knn", {"n_neighbors": 32}, n_train=32).fit(X[idx], train.labels[idx])
    model = PriorModel.fit(knn, X[idx], train.labels[idx], groups=[train.groups[i] for i in idx], seed=0)
    assert 0 < model.train < 1
