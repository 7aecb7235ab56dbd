"""Platt scaling: the sigmoid fit and the PlattCalibrated wrapper, on synthetic scores and real GloVe vectors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from pipeline.heads.calibration import INTERCEPT_WEIGHT, PlattCalibrated, fit_sigmoid
from pipeline.heads.linear_svm import LinearSVM


def test_fit_sigmoid_recovers_a_known_sigmoid():
    rng = np.random.default_rng(0)
    s = rng.normal(0, 3, 50_000)
    y = rng.random(s.size) < expit(0.8 * s - 0.5)
    a, b = fit_sigmoid(s, y)
    assert a == pytest.approx(0.8, abs=0.03) and b == pytest.approx(-0.5, abs=0.05)
    assert fit_sigmoid(s, y, INTERCEPT_WEIGHT) == pytest.approx((a, b), abs=1e-3)  # many scores outweigh the pull


def test_fit_sigmoid_stays_finite_and_never_inverts():
    y = np.array([0] * 10 + [1] * 10)
    a, b = fit_sigmoid(np.where(y == 1, 5.0, -5.0), y)  # separable: Platt's targets keep a finite
    assert 0 < a < 10
    a, b = fit_sigmoid(np.where(y == 1, -1.0, 1.0), y)  # scores point the wrong way
    assert a == 0.0  # no signal: a constant probability, not an inverted one
    assert expit(b) == pytest.approx(0.5)


def test_platt_calibrated_uses_given_out_of_fold_scores(glove_xy):
    train, X, test, X_test = glove_xy
    oof = np.where(train.labels == 1, 1.0, -1.0)
    model = PlattCalibrated(LinearSVM(C=0.01)).fit(X, train.labels, oof_decision=oof)
    assert (model.a_, model.b_) == pytest.approx(fit_sigmoid(oof, train.labels))
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(model.predict(X_test), (proba[:, 1] >= 0.5).astype(int))
    with pytest.raises(ValueError, match="oof_decision has 3 values"):
        PlattCalibrated(LinearSVM()).fit(X, train.labels, oof_decision=oof[:3])


def test_platt_calibrated_cross_validates_or_falls_back_to_training_scores(glove_xy):
    train, X, test, X_test = glove_xy
    cv = PlattCalibrated(LinearSVM(C=0.01)).fit(X, train.labels)  # 150 per class: out of fold
    auc_order = np.argsort(cv.decision_function(X_test))
    assert np.all(np.diff(cv.predict_proba(X_test)[auc_order, 1]) >= 0)  # monotone in the margin
    assert (cv.predict(X_test) == test.labels).mean() > 0.55
    tiny = np.concatenate([np.flatnonzero(train.labels == c)[:6] for c in (0, 1)])
    small = PlattCalibrated(LinearSVM(C=0.01)).fit(X[tiny], train.labels[tiny])  # 6 per class: in-sample
    assert small.a_ > 0  # the classifier's own margins are never read backwards



def test_platt_intercept_keeps_the_margin_threshold_on_few_labels(glove_xy):
    # on 16 labels per class the out-of-fold margins of 2-fold CV place Platt's threshold (-b / a) by noise;
    # the pull on the intercept keeps it near the classifier's own (margin 0), much less so on 150 per class
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    train, X, _, X_test = glove_xy
    kept = {}
    for n_per_class in (16, 150):
        free, pulled = [], []
        for seed in range(8):
            rng = np.random.default_rng(seed)
            idx = np.concatenate([rng.choice(np.flatnonzero(train.labels == c), n_per_class, replace=False)
                                  for c in (0, 1)])
            Xs, ys = X[idx], train.labels[idx]
            cv = StratifiedKFold(2, shuffle=True, random_state=seed)
            oof = cross_val_predict(LinearSVM(C=1.0), Xs, ys, cv=cv, method="decision_function")
            a, b = fit_sigmoid(oof, ys)
            model = PlattCalibrated(LinearSVM(C=1.0), intercept_weight=INTERCEPT_WEIGHT).fit(Xs, ys, oof_decision=oof)
            assert abs(model.b_) <= abs(b) and model.b_ * b >= 0  # toward 0, never past it
            if a > 0:  # (margins with no signal get a flat sigmoid, with no threshold to compare)
                free.append(abs(b / a))
                pulled.append(abs(model.b_ / model.a_))
        assert len(free) >= 4
        kept[n_per_class] = np.mean(pulled) / np.mean(free)
    assert kept[16] < 0.6 and 0.8 < kept[150] <= 1


def test_heads_saved_before_the_intercept_pull_load_without_it(glove_xy):
    import pickle

    train, X, _, X_test = glove_xy
    model = PlattCalibrated(LinearSVM(C=0.01), intercept_weight=INTERCEPT_WEIGHT).fit(X, train.labels)
    del model.intercept_weight  # as a head saved by an earlier version holds it
    old = pickle.loads(pickle.dumps(model))
    assert old.get_params()["intercept_weight"] == 0.0
    np.testing.assert_array_equal(old.predict(X_test), model.predict(X_test))
