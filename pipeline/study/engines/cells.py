"""A compare cell: one head fitted on one budget sample and scored on every test set.

It sits below :mod:`pipeline.study.compare` and the engines (:mod:`pipeline.study.engines`), which run cells, so no
engine imports compare.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.study.engines.base import Cell, Method

SCORES = ("accuracy", "balanced_accuracy", "majority_rate", "macro_f1", "roc_auc", "log_loss", "ece")


def budget_label(budget: int | None) -> str:
    """How a budget is written in results and reports."""
    return "all" if budget is None else str(budget)


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    """The :data:`SCORES` of probabilities of positive ``proba`` against the labels ``y``."""
    from pipeline.predict.metrics import evaluate

    metrics = evaluate(y, proba)
    return {k: metrics[k] for k in SCORES}


def _adapted_scores(y: np.ndarray, proba: np.ndarray, model: Any, shift: dict[str, Any] | None) -> dict[str, Any]:
    """Accuracy after guarded class-prior adaptation (the plain accuracy when it declines), whether it
    adapted and why, the EM and BBSE estimates and the true prior."""
    adapted = model.adapt(proba, shift=shift)
    found = {e.method: round(e.value, 6) for e in adapted.decision.estimates}
    return {
        "accuracy_adapted": float(((adapted.p_pos >= 0.5) == y).mean()),
        "adapted": adapted.decision.adapt,
        "decision": adapted.decision.reason,
        "estimated_prior": found["EM"],
        "bbse_prior": found.get("BBSE"),
        "true_prior": round(float(np.mean(y)), 6),
    }


def streamed(method: Method, budget: int | None, out_of_core: dict[str, Any] | None) -> bool:
    """Whether a cell trains out of core: an ``sgd`` head on the whole pool, when compare was asked to."""
    return out_of_core is not None and budget is None and method.head == "sgd" and not method.self_train


def _fit_streamed(X: Any, y: np.ndarray, seed: int, class_weight: str | None, settings: dict[str, Any]) -> Any:
    """A fitted-head record (estimator, params, fit_seconds) of :func:`pipeline.heads.out_of_core.fit_chunks` on ``X``."""
    import time
    from types import SimpleNamespace

    from pipeline.heads.out_of_core import OutOfCore, fit_chunks

    start = time.perf_counter()
    estimator = fit_chunks(lambda idx: np.asarray(X[idx], dtype=np.float32), np.arange(len(y)), y,
                           settings=OutOfCore(**settings), class_weight=class_weight, seed=seed)
    return SimpleNamespace(estimator=estimator, params={**settings, "epochs_run": int(estimator[-1].n_iter_)},
                           fit_seconds=time.perf_counter() - start)


def fit_frozen_cell(cell: Cell) -> dict[str, Any]:
    """Fit the head of ``cell`` on its budget sample and score it on every test set (runs in a joblib worker).

    The cell's ``folds`` (:func:`pipeline.heads.registry.plan_folds` of the sample) lets heads on one sample share their CV folds.
    Its options (:class:`pipeline.study.engines.base.CellOptions`): ``adapt_prior`` adds, per test set, the accuracy after guarded class-prior adaptation (see
    :meth:`pipeline.predict.prior.PriorModel.adapt`, given ``shift``, each test set's domain-shift check), its
    decision and reason, the estimates and the true prior.
    ``class_weight="balanced"`` reweights classes (``compare --query``: actively chosen samples are unbalanced).
    A ``method.self_train`` cell self-trains the head with ``self_train`` settings on the vectors
    ``X_unlabelled`` (vectors only: no label of the unlabelled texts reaches this function).
    ``search=False`` fits the head's fixed defaults instead of searching its grid by cross-validation.
    ``prompt_direction`` gives linear heads their prompt prior (:mod:`pipeline.heads.prompts`).
    ``layout`` (a routed encoder's) fits a head per language side (:func:`pipeline.heads.routed.fit_routed`).
    ``out_of_core`` trains an ``sgd`` whole-pool cell chunk by chunk (:func:`pipeline.heads.out_of_core.fit_chunks`),
    reading ``X[positions]`` only: the cell's X may be a reader of the cache rather than an array.
    """
    from pipeline.heads.registry import SELECTION, FitOptions
    from pipeline.heads.routed import fit_any

    method, budget, seed, X_train, y_train, groups, tests, folds = (cell.method, cell.budget, cell.seed, cell.X, cell.y,
                                                                    cell.groups, cell.tests, cell.folds)
    o = cell.options
    class_weight, self_train, prompt_direction = o.class_weight, o.self_train, o.prompt_direction
    extra: dict[str, Any] = {}
    if streamed(method, budget, o.out_of_core):
        fitted = _fit_streamed(X_train, y_train, seed, class_weight, o.out_of_core)
    elif method.self_train:
        from pipeline.unlabelled.routed import self_train_any

        fitted, record = self_train_any(method.head, X_train, y_train, o.X_unlabelled, o.layout, settings=self_train,
                                        options=FitOptions(groups=groups, seed=seed, folds=folds,
                                                           class_weight=class_weight, prompt_direction=prompt_direction))
        extra["self_train"] = {k: record[k] for k in ("fraction", "threshold", "rounds", "rounds_run", "cost_vs_teacher")}
    else:
        fitted = fit_any(method.head, X_train, y_train, o.layout,
                         FitOptions(groups=groups, seed=seed, folds=folds, class_weight=class_weight,
                                    prompt_direction=prompt_direction), selection=SELECTION if o.search else None)
    probas = {name: fitted.estimator.predict_proba(X)[:, 1] for name, (X, _) in tests.items()}
    metrics = {name: scores(y, probas[name]) for name, (_, y) in tests.items()}
    if o.adapt_prior:
        from pipeline.predict.prior import PriorModel

        model = PriorModel.fit(fitted.estimator, X_train, y_train, groups=groups, seed=seed)
        for name, (_, y) in tests.items():
            metrics[name].update(_adapted_scores(y, probas[name], model, (o.shift or {}).get(name)))
    return {
        "method": method.name,
        "encoder": method.encoder,
        "head": method.head,
        "kind": "frozen",
        "budget": budget_label(budget),
        "n_train": int(len(y_train)),
        "seed": seed,
        "params": fitted.params,
        "metrics": metrics,
        "fit_seconds": round(fitted.fit_seconds, 4),
        **extra,
    }
