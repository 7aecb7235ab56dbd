"""LinearSVM (squared hinge by L-BFGS) against scikit-learn's LinearSVC on real GloVe vectors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from pipeline.heads.linear_svm import LinearSVM


def _cosine(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


@pytest.fixture(scope="module")
def scaled(glove_xy):
    """Standardised GloVe vectors of an imbalanced training sample (all negatives, half the positives)."""
    train, X, _, X_test = glove_xy
    idx = np.concatenate([np.flatnonzero(train.labels == 0), np.flatnonzero(train.labels == 1)[::2]])
    scaler = StandardScaler().fit(X[idx])
    return scaler.transform(X[idx]), train.labels[idx], scaler.transform(X_test)


@pytest.mark.parametrize(("C", "class_weight"), [(1e-3, None), (1e-2, None), (1e-1, None), (1.0, None),
                                                 (1e-2, {0: 1.0, 1: 3.0}), (1e-1, "balanced")])
def test_same_solution_as_liblinear(scaled, C, class_weight):
    X, y, X_test = scaled
    ours = LinearSVM(C=C, class_weight=class_weight, tol=1e-6).fit(X, y)
    # intercept_scaling=100 makes liblinear's penalty on the intercept negligible, as ours has none
    ref = LinearSVC(C=C, class_weight=class_weight, dual=False, tol=1e-8, max_iter=100_000,
                    intercept_scaling=100).fit(X, y)
    assert _cosine(ours.coef_[0], ref.coef_[0]) > 0.999
    assert ours.intercept_[0] == pytest.approx(ref.intercept_[0], abs=0.02)
    assert (ours.predict(X_test) == ref.predict(X_test)).mean() > 0.98
    assert ours.coef_.shape == (1, X.shape[1]) and ours.n_iter_ > 0


def test_float32_input_and_class_weights(scaled):
    X, y, X_test = scaled
    plain = LinearSVM(C=0.01).fit(X.astype(np.float32), y)  # float32 is solved in float32
    assert _cosine(plain.coef_[0], LinearSVM(C=0.01).fit(X, y).coef_[0]) > 0.9999
    balanced = clone(plain).set_params(class_weight="balanced").fit(X, y)
    # positives are the rarer class here: weighting them up predicts more of them
    assert balanced.predict(X_test).mean() > plain.predict(X_test).mean()


def test_labels_and_errors(scaled):
    X, y, _ = scaled
    named = np.array(["neg", "pos"])[y]
    fitted = LinearSVM(C=0.01).fit(X, named)
    assert list(fitted.classes_) == ["neg", "pos"]
    assert set(fitted.predict(X[:20])) <= {"neg", "pos"}
    with pytest.raises(ValueError, match="binary"):
        LinearSVM().fit(X[:30], np.arange(30) % 3)
    with pytest.raises(ValueError, match="C must be positive"):
        LinearSVM(C=0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.decision_function(X[:, :10])
    with pytest.warns(Warning, match="did not converge"):
        LinearSVM(C=10.0, max_iter=2).fit(X, y)


def test_warm_start_reaches_the_same_solution_in_fewer_iterations(scaled):
    X, y, _ = scaled
    cold = LinearSVM(C=0.1, tol=1e-6).fit(X, y)
    warm = LinearSVM(C=0.03, tol=1e-6, warm_start=True).fit(X, y).set_params(C=0.1).fit(X, y)
    assert _cosine(warm.coef_[0], cold.coef_[0]) > 0.9999
    assert warm.n_iter_ < cold.n_iter_
