"""Heads and metrics on real cached GloVe vectors of Rotten Tomatoes snippets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, log_loss,
                             roc_auc_score)
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.preprocessing import Normalizer, StandardScaler

from pipeline.heads.calibration import INTERCEPT_WEIGHT, PlattCalibrated
from pipeline.heads.registry import HEADS, FitOptions, HeadError, Selection, build_head, fit_head, get_head, normalized_spread, plan_cv
from pipeline.predict.metrics import evaluate, expected_calibration_error


@pytest.mark.parametrize("name", list(HEADS))
def test_each_head_fits_searches_and_beats_chance(name, glove_xy):
    train, X, test, X_test = glove_xy
    # one K-fold split keeps this quick for the slow heads; repeated splits are tested below
    fitted = fit_head(name, X, train.labels, FitOptions(groups=train.groups, seed=0),
                      selection=Selection(max_repeats=1))
    proba = fitted.estimator.predict_proba(X_test)
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(1), 1)
    assert list(fitted.estimator.classes_) == [0, 1]
    # the chosen point comes from the head's grid (for these rows), by group-aware CV (150 per class, many movies)
    grid = HEADS[name].for_rows(False, normalized_spread(X)).grid
    for key, value in fitted.params.items():
        assert value in grid[key]
    assert fitted.search.startswith("StratifiedGroupKFold(5)") and 0 < fitted.cv_accuracy <= 1
    scores = evaluate(test.labels, proba)
    assert scores["roc_auc"] > 0.55, f"{name} is no better than chance: {scores}"


def test_calibration_and_scaling_live_inside_the_saved_estimator():
    for name, spec in HEADS.items():
        steps = dict(build_head(name).steps)
        assert isinstance(steps.get("scale"), StandardScaler) == spec.scale
        assert isinstance(steps.get("normalize"), Normalizer) == (spec.normalize or spec.spread_scaled is not None)
        assert isinstance(steps["clf"], PlattCalibrated) == spec.calibrate
        if spec.calibrate:  # the linear heads and knn keep their own threshold on few labels, the RBF SVM does not
            assert steps["clf"].intercept_weight == (0.0 if name == "rbf-svm" else INTERCEPT_WEIGHT)
        assert hasattr(build_head(name), "predict_proba")
        # on unit-length rows (sentence embeddings) the linear heads take the rows as they are
        unit_steps = dict(build_head(name, unit=True).steps)
        assert isinstance(unit_steps.get("normalize"), Normalizer) == spec.normalize


def test_rows_not_of_unit_length_are_normalised_and_the_grid_follows_their_spread(glove_xy):
    from sklearn.preprocessing import normalize

    from pipeline.heads.registry import REFERENCE_SPREAD, normalized_spread, unit_rows

    train, X, test, X_test = glove_xy
    assert not unit_rows(X) and unit_rows(normalize(X)) and not unit_rows(2 * normalize(X))
    spread = normalized_spread(X)
    assert spread == pytest.approx(normalized_spread(3 * X)) and 0.05 < spread < REFERENCE_SPREAD / 2  # GloVe crowds
    centred = normalize(X) - normalize(X).mean(axis=0)
    assert spread == pytest.approx(float((centred ** 2).sum(axis=1).mean()))
    for name in ("logreg", "linear-svm", "ridge"):
        spec = HEADS[name]
        key, power = spec.spread_scaled
        on_unit = fit_head(name, normalize(X), train.labels, FitOptions(groups=train.groups, seed=0))
        assert list(dict(on_unit.estimator.steps)) == ["clf"] and on_unit.params[key] in spec.grid[key]
        on_glove = fit_head(name, X, train.labels, FitOptions(groups=train.groups, seed=0))
        assert list(dict(on_glove.estimator.steps)) == ["normalize", "clf"]
        assert f"spread {spread:.2f}" in on_glove.search
        scaled = [v * (REFERENCE_SPREAD / spread) ** power for v in spec.grid[key]]
        assert any(on_glove.params[key] == pytest.approx(v, rel=5e-3) for v in scaled)  # 3 significant digits
        # the Normalizer does what normalising the rows beforehand does, at the rescaled default
        defaults = fit_head(name, X, train.labels, selection=None)
        assert defaults.params[key] == pytest.approx(spec.default[key] * (REFERENCE_SPREAD / spread) ** power, rel=5e-3)
        by_hand = build_head(name, defaults.params, unit=True).fit(normalize(X), train.labels)
        # margins, not probabilities: Platt's sigmoid is fitted on out-of-fold margins, which differ
        np.testing.assert_allclose(defaults.estimator.decision_function(X_test),
                                   by_hand.decision_function(normalize(X_test)), rtol=1e-4, atol=1e-5)


def test_selection_repeats_small_samples_and_prefers_stronger_regularisation():
    from pipeline.heads.registry import choose_point

    rule = Selection(rows=1000, max_repeats=4, one_se=0.5)
    assert [rule.repeats(n) for n in (32, 256, 300, 512, 1000, 10_000)] == [4, 4, 4, 2, 1, 1]
    # 5 folds x 3 points (strongest regularisation first): the best mean is point 2, but point 1 is
    # within half a standard error of it, and point 0 is not
    accuracy = np.array([[0.60, 0.70, 0.80], [0.60, 0.72, 0.64], [0.62, 0.71, 0.76],
                         [0.61, 0.72, 0.70], [0.60, 0.70, 0.70]])
    se = accuracy[:, 2].std(ddof=1) / np.sqrt(5)
    assert accuracy[:, 2].mean() - 0.5 * se < accuracy[:, 1].mean() < accuracy[:, 2].mean()
    assert choose_point(accuracy, 5, 0.5) == 1
    assert choose_point(accuracy, 5, 0.0) == 2  # the best mean, as GridSearchCV picks
    # the default (point 1 here) is kept while the best beats it by at most 2 SE; point 0 trails by more
    assert choose_point(accuracy, 5, 0.5, default=1, keep_default_se=2.0) == 1
    assert choose_point(accuracy, 5, 0.5, default=0, keep_default_se=2.0) == 1  # beaten: the one-SE rule picks
    assert choose_point(accuracy, 5, 0.0, default=0, keep_default_se=0.0) == 2


def test_small_budget_uses_defaults_without_search(glove_xy):
    train, X, _, _ = glove_xy
    idx = np.concatenate([np.flatnonzero(train.labels == c)[:6] for c in (0, 1)])
    fitted = fit_head("knn", X[idx], train.labels[idx], FitOptions(groups=[train.groups[i] for i in idx]))
    assert fitted.cv_accuracy is None and fitted.search.startswith("defaults")
    assert fitted.params == dict(HEADS["knn"].default)
    assert fitted.estimator[-1].estimator_.n_neighbors == len(idx)  # capped at the training size
    assert fitted.estimator.predict(X[:5]).shape == (5,)


def test_knn_larger_than_the_training_folds_means_every_neighbour(glove_xy):
    train, X, _, _ = glove_xy
    idx = np.concatenate([np.flatnonzero(train.labels == c)[:20] for c in (0, 1)])  # 2 folds of 20 training rows
    fitted = fit_head("knn", X[idx], train.labels[idx], FitOptions(groups=[train.groups[i] for i in idx]))
    # k 1,000, 95 and 45 all become "all 20 neighbours" in the folds (one point, not dropped), beside k 15
    assert " over 2 points" in fitted.search
    k = fitted.params["n_neighbors"]
    assert k in HEADS["knn"].grid["n_neighbors"]
    assert fitted.estimator[-1].estimator_.n_neighbors == (len(idx) if k > len(idx) else k)


def test_plan_cv_prefers_groups_only_when_there_are_enough():
    y = np.array([0, 1] * 40)
    assert plan_cv(y[:20], None, 0)[0] is None  # 10 per class: too few for 2 folds of 8
    assert isinstance(plan_cv(y, None, 0)[0], StratifiedKFold)
    assert plan_cv(y, None, 0)[0].get_n_splits() == 5
    many = [f"movie{i % 20}" for i in range(80)]
    assert isinstance(plan_cv(y, many, 0)[0], StratifiedGroupKFold)
    few = [f"movie{i % 3}" for i in range(80)]
    assert isinstance(plan_cv(y, few, 0)[0], StratifiedKFold)


def test_folds_of_too_few_groups_split_by_class_without_a_warning():
    from pipeline.heads.registry import plan_folds

    y = np.array([0, 1] * 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn: "The groups parameter is ignored by StratifiedKFold", once a fold
        folds = plan_folds(y, [f"product{i % 3}" for i in range(80)], seed=0)
    assert folds.how.startswith("StratifiedKFold(5)") and len(folds.splits) == 5 * folds.repeats


def test_class_weight_balanced(glove_xy):
    train, X, _, _ = glove_xy
    idx = np.concatenate([np.flatnonzero(train.labels == 0)[:20], np.flatnonzero(train.labels == 1)])
    fitted = fit_head("logreg", X[idx], train.labels[idx], FitOptions(class_weight="balanced"), selection=None)
    assert fitted.estimator[-1].class_weight == "balanced"
    assert list(build_head("nb", class_weight="balanced")[-1].priors) == [0.5, 0.5]
    with pytest.warns(UserWarning, match="knn.*no class weights"):
        build_head("knn", class_weight="balanced")
    with pytest.raises(HeadError, match="balanced"):
        build_head("logreg", class_weight="inverse")


def test_unknown_head_lists_choices():
    with pytest.raises(HeadError) as err:
        get_head("xgboost")
    assert "xgboost" in str(err.value)
    for name in HEADS:
        assert name in str(err.value)


def test_single_class_or_tiny_labels_are_refused(glove_xy):
    train, X, _, _ = glove_xy
    with pytest.raises(HeadError, match="at least 2 examples of each class"):
        fit_head("logreg", X[:50], np.ones(50, dtype=np.int64))
    with pytest.raises(HeadError, match="one 0/1 label per row"):
        fit_head("logreg", X[:50], train.labels[:40])


@pytest.mark.parametrize("seed", range(5))
def test_metrics_agree_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.6 + rng.normal(0.2, 0.25, 500), 0, 1)  # holds exact 0s, 1s and ties
    p[:50] = np.round(p[:50], 1)
    scores = evaluate(y, np.column_stack([1 - p, p]))
    pred = (p >= 0.5).astype(int)
    assert scores["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert scores["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert scores["log_loss"] == pytest.approx(log_loss(y, p))
    assert scores["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert scores["majority_rate"] == pytest.approx(max(y.mean(), 1 - y.mean()))
    all_wrong = evaluate(np.zeros(4, int), np.ones(4))
    assert all_wrong["macro_f1"] == f1_score(np.zeros(4), np.ones(4), average="macro", labels=[0, 1], zero_division=0)


def test_metrics_edge_cases():
    # ECE: zero for a predictor whose confidence equals its accuracy; |acc - conf| for a constant one
    assert expected_calibration_error(np.array([1, 1, 0, 1]), np.full(4, 0.75)) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1, 0, 0, 0]), np.full(4, 0.9)) == pytest.approx(0.65)
    one_class = evaluate(np.ones(3), np.array([0.9, 0.8, 0.4]))
    assert one_class["roc_auc"] is None and one_class["majority_rate"] == 1.0
    assert one_class["balanced_accuracy"] == pytest.approx(2 / 3)  # the recall of the one class present
    with pytest.raises(ValueError, match="outside"):
        evaluate(np.array([0, 1]), np.array([-0.5, 1.5]))
    with pytest.raises(ValueError, match="0/1"):
        evaluate(np.array([0, 2]), np.array([0.5, 0.5]))


def test_all_heads_fit_without_warnings_on_defaults(glove_xy):
    train, X, _, _ = glove_xy
    for name in HEADS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fit_head(name, X, train.labels, selection=None)


def test_knn_grid_path_scores_every_k_as_a_refit_would(glove_xy):
    from sklearn.base import clone
    from sklearn.preprocessing import normalize

    from pipeline.heads.registry import _knn_grid_path, _nearest

    train, X, _, X_test = glove_xy
    X, X_test = normalize(X), normalize(X_test)
    template = build_head("knn")[-1].estimator  # the k-NN behind Platt's sigmoid
    points = [{"n_neighbors": k} for k in (1, 5, 15, 45, len(X))]  # the last: every training row
    path = _knn_grid_path(template, points, X, train.labels, X_test)
    for margins, point in zip(path, points):
        refit = clone(template).set_params(**point).fit(X, train.labels)
        # the path finds neighbours by its own matrix product: the same ones, distances equal up to rounding
        np.testing.assert_allclose(margins, refit.predict_proba(X_test)[:, 1] - 0.5, atol=1e-5)
    # computed block by block (here 7 validation rows at a time), the distances are the same up to rounding
    X, X_test = X.astype(np.float32), X_test.astype(np.float32)
    np.testing.assert_allclose(_nearest(X, X_test, 45, block=7 * len(X))[0], _nearest(X, X_test, 45)[0], atol=1e-6)


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_nb_grid_path_scores_every_var_smoothing_as_a_refit_would(glove_xy, class_weight):
    from sklearn.base import clone

    from pipeline.heads.registry import _nb_grid_path

    train, X, _, X_test = glove_xy
    template = build_head("nb", class_weight=class_weight)[-1]
    points = [{"var_smoothing": v} for v in (1e-1, 1e-2, 1e-5, 1e-9)]
    path = _nb_grid_path(template, points, X, train.labels, X_test)
    for margins, point in zip(path, points):
        refit = clone(template).set_params(**point).fit(X, train.labels)
        np.testing.assert_allclose(margins, refit.predict_proba(X_test)[:, 1] - 0.5, atol=1e-9)


def test_group_folds_are_scikit_learns(rt_split):
    from sklearn.model_selection import StratifiedGroupKFold

    from pipeline.data.dataset import budget_indices
    from pipeline.heads.registry import _StratifiedGroupKFold

    pool, _ = rt_split
    for budget, seed, k in [(64, 0, 5), (256, 1, 5), (1000, 2, 5), (None, 3, 3)]:
        idx = budget_indices(pool, budget, seed)
        y, groups = pool.labels[idx], [pool.groups[i] for i in idx]
        ours, ref = (
            [val.tolist() for _, val in splitter(k, shuffle=True, random_state=seed).split(y, y, groups)]
            for splitter in (_StratifiedGroupKFold, StratifiedGroupKFold)
        )
        assert ours == ref


@pytest.mark.parametrize("class_weight", [None, "balanced"])
@pytest.mark.parametrize("n_rows", [30, 240])  # fewer rows than dimensions (dual form) and more (primal)
def test_ridge_grid_path_scores_every_alpha_as_a_refit_would(glove_xy, class_weight, n_rows):
    from sklearn.base import clone

    from pipeline.heads.registry import _ridge_grid_path

    train, X, _, X_test = glove_xy
    rows = np.r_[0:n_rows - 10, len(X) - 10:len(X)]  # unbalanced classes, so the weights matter
    scaler = StandardScaler().fit(X[rows])
    X_fit, X_val, y = scaler.transform(X[rows]), scaler.transform(X_test), train.labels[rows]
    template = build_head("ridge", class_weight=class_weight)[-1].estimator
    points = [{"alpha": a} for a in (0.1, 1.0, 100.0, 1e4)]
    path = _ridge_grid_path(template, points, X_fit, y, X_val)
    for margins, point in zip(path, points):
        refit = clone(template).set_params(**point).fit(X_fit.astype(np.float64), y)
        np.testing.assert_allclose(margins, refit.decision_function(X_val.astype(np.float64)), atol=1e-8)


def test_heads_on_one_sample_can_share_folds(glove_xy):
    from pipeline.heads.registry import plan_folds

    train, X, _, _ = glove_xy
    folds = plan_folds(train.labels, train.groups, seed=3)
    assert folds.how == "StratifiedGroupKFold(5) x 2" and len(folds.splits) == 10 and folds.repeats == 2
    for r in range(2):  # each repeat validates every row exactly once
        rows = np.sort(np.concatenate([val for _, val in folds.splits[5 * r:5 * r + 5]]))
        np.testing.assert_array_equal(rows, np.arange(len(train.labels)))
    for name in ("logreg", "ridge"):
        shared = fit_head(name, X, train.labels, FitOptions(groups=train.groups, seed=3, folds=folds))
        own = fit_head(name, X, train.labels, FitOptions(groups=train.groups, seed=3))
        assert (shared.params, shared.cv_accuracy, shared.cv_sd, shared.search) == (
            own.params, own.cv_accuracy, own.cv_sd, own.search)
    with pytest.raises(HeadError, match="plan_folds on this sample"):
        fit_head("logreg", X[:100], train.labels[:100], FitOptions(folds=folds))


def test_ridge_default_is_the_grid_point_nearest_logreg_default(glove_xy):
    # alpha = 4 / C: ridge then solves logistic regression's second-order expansion at margin 0
    from dataclasses import replace

    train, X, test, X_test = glove_xy
    logreg = fit_head("logreg", X, train.labels, selection=None).estimator
    w = logreg[-1].coef_.ravel()
    ridge = HEADS["ridge"]
    cosine, agree = {}, {}
    for alpha in ridge.grid["alpha"]:
        fitted = fit_head(replace(ridge, default={"alpha": alpha}), X, train.labels, selection=None).estimator
        v = fitted[-1].estimator_.coef_.ravel()
        cosine[alpha] = float(w @ v / np.linalg.norm(w) / np.linalg.norm(v))
        agree[alpha] = float(np.mean(np.sign(fitted.decision_function(X_test)) == np.sign(logreg.decision_function(X_test))))
    default = ridge.default["alpha"]
    assert max(cosine, key=cosine.get) == default and cosine[default] > 0.99
    assert max(agree, key=agree.get) == default and agree[default] > 0.97


@pytest.mark.parametrize("name", ["linear-svm", "ridge"])
def test_calibrated_heads_never_collapse_to_one_class(glove_xy, name):
    # labels that carry little signal in a tiny sample: out-of-fold margins then often rank the classes
    # worse than chance, and a sigmoid fitted to them alone would predict one class for every row
    train, X, _, _ = glove_xy
    for seed in range(6):
        rng = np.random.default_rng(seed)
        idx = np.concatenate([rng.choice(np.flatnonzero(train.labels == c), 16, replace=False) for c in (0, 1)])
        y = rng.permutation(train.labels[idx])
        fitted = fit_head(name, X[idx], y, FitOptions(seed=seed))
        assert len(np.unique(fitted.estimator.predict(X[idx]))) == 2


def test_knn_ranks_k_on_a_sample_of_each_large_validation_fold(glove_xy):
    from dataclasses import replace

    from pipeline.heads.registry import _classifier, _cross_validate, plan_folds

    train, X, _, _ = glove_xy
    folds = plan_folds(train.labels, train.groups, seed=0)
    spec = replace(HEADS["knn"], max_val_rows=20)  # the folds here hold 60 validation rows each
    points = [{"n_neighbors": k} for k in (45, 15)]
    accuracy, margins = _cross_validate(spec, _classifier(spec, None, None, 0, 200), points, X, train.labels,
                                        folds.splits, folds.repeats, None)
    assert accuracy.shape == (len(folds.splits), 2)
    np.testing.assert_allclose(accuracy * 20, np.round(accuracy * 20))  # 20 validated rows per fold
    assert np.isfinite(margins).sum(axis=1).tolist() == [20 * len(folds.splits) // folds.repeats] * 2
