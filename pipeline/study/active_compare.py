"""``compare --query``: simulated active learning on a labelled SOURCE, beside balanced random budgets.

For each method (encoder + head), query strategy and seed, the strategy builds its own labelled
sample round by round (``k`` texts a round) from the seed's cold start, asking an
:class:`~pipeline.active.strategies.Oracle` for each label; the pool's other labels stay hidden. Whenever the
sample reaches a budget, the head is fitted on it (``refit``: its fixed defaults, or ``compare``'s CV
search, which is biased on a sample that is not i.i.d.) and scored on the test split. ``random`` is
today's balanced budget sample of that seed, so every strategy is paired with it by seed. Rows go to
the same ``results.jsonl`` as other cells, named ``ENCODER+HEAD[refit=...]/STRATEGY[setting=value,...]``
(the refit unless ``cv``, the settings that differ from the defaults); a killed run resumes,
recomputing only the missing cells.

``split="validation"`` scores on a validation split carved out of the pool instead
(:func:`~pipeline.data.dataset.validation_split`, whole groups), the strategies drawing from the rest: the
test split is never read, so settings can be chosen on it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.active.choices import DEFAULT_REFIT, REFITS
from pipeline.active.strategies import (SETTINGS, Oracle, QuerySettings, check_strategy, simulate, typicality,
                                       unit_rows)
from pipeline.study.engines.base import Cell, CellOptions, Method
from pipeline.study.engines.cells import budget_label, fit_frozen_cell
from pipeline.study.compare import SPLITS, Execution, ResultsLog, StudyPlan, check_run_identity
from pipeline.data.dataset import Dataset, DataError, budget_indices, split, validation_split

DEFAULT_BATCH = 8
# an actively chosen sample is rarely balanced: weight classes inversely to their counts (on the balanced
# random samples this changes nothing, so the pairing with random stays fair)
CLASS_WEIGHT = "balanced"


def settings_tag(settings: QuerySettings, k: int = DEFAULT_BATCH) -> str:
    """``[name=value,...]`` for the settings (and batch ``k``) that differ from the defaults, else ``""``."""
    changed = [f"{f.name}={getattr(settings, f.name)}" for f in dataclasses.fields(settings)
               if getattr(settings, f.name) != getattr(SETTINGS, f.name)]
    changed += [f"batch={k}"] if k != DEFAULT_BATCH else []
    return f"[{','.join(changed)}]" if changed else ""


def query_method(method: Method, query: str, tag: str = "", refit: str = DEFAULT_REFIT) -> str:
    """How a simulated method is named in results and reports, e.g. ``minilm+logreg/margin``; ``random``
    (balanced budgets) takes no settings ``tag``; a ``refit`` other than a CV search (how plain compare
    fits ``minilm+logreg``) names the head, e.g. ``minilm+logreg[refit=default]/margin``, so each strategy
    is paired with random fitted the same way."""
    head = method.name if refit == "cv" else f"{method.name}[refit={refit}]"
    return f"{head}/{query}{'' if query == 'random' else tag}"


@dataclass(frozen=True)
class QueryPlan:
    """How ``compare --query`` simulates active learning: the strategies (beside ``random``), ``k`` texts
    queried per round, the strategies' ``settings``, the split scored (``test``, or ``validation`` carved out
    of the pool) and how each sample's head is fitted (``refit``, :data:`REFITS`)."""

    queries: Sequence[str]
    k: int = DEFAULT_BATCH
    settings: QuerySettings = SETTINGS
    split_name: str = "test"
    refit: str = DEFAULT_REFIT


@dataclass(frozen=True)
class EncodedPool:
    """One encoder's view of the study's data, computed once for all its trajectories: the ``pool`` and its
    vectors ``X``, each test set's ``(vectors, labels)``, and ``typical``, the
    :func:`~pipeline.active.strategies.typicality` of the pool (None: computed by each trajectory)."""

    pool: Dataset
    X: np.ndarray
    tests: dict[str, tuple[np.ndarray, np.ndarray]]
    typical: np.ndarray | None = None


def trajectory_cells(
    method: Method, query: str, seed: int, budgets: Sequence[int], skip: set[int], data: EncodedPool,
    plan: QueryPlan = QueryPlan(()),
) -> list[dict[str, Any]]:
    """The cells of one (method, strategy, seed) on ``data`` at every budget not in ``skip`` (runs in a joblib
    worker); ``plan``: the batch size, strategy settings and refit."""
    k, settings, refit = plan.k, plan.settings, plan.refit
    pool, X_pool, tests = data.pool, data.X, data.tests
    if query == "random":  # the balanced, seeded samples of plain compare cells
        samples = ((b, budget_indices(pool, b, seed)) for b in budgets)
        samples = ((b, idx, pool.labels[idx]) for b, idx in samples)
    else:
        samples = simulate(query, X_pool, Oracle(pool.labels), budgets, k=k, seed=seed, head=method.head,
                           typical=data.typical, settings=settings)
    rows = []
    for budget, idx, y in samples:
        if budget in skip:
            continue
        groups = None if pool.groups is None else [pool.groups[i] for i in idx]
        row = fit_frozen_cell(Cell(method, budget, seed, X_pool[idx], y, groups, tests,
                                   options=CellOptions(class_weight=CLASS_WEIGHT, search=refit == "cv")))
        row.update(method=query_method(method, query, settings_tag(settings, k), refit), query=query,
                   query_batch=None if query == "random" else k, positive_share=round(float(np.mean(y)), 4))
        rows.append(row)
    return rows


def _check_options(source: Dataset, heads: Sequence[str], queries: Sequence[str], budgets: Sequence[int | None],
                   k: int, which: str, refit: str) -> None:
    """Fail before any work on an unknown strategy, head, split or refit, a budget 'all', a bad batch or no labels."""
    from pipeline.heads.registry import get_head

    for q in queries:
        check_strategy(q)
    for head in heads:
        get_head(head)
    if which not in SPLITS:
        raise OptionError(f"unknown split {which!r}; choose one of {', '.join(SPLITS)}.")
    if refit not in REFITS:
        raise OptionError(f"unknown refit {refit!r}; choose one of {', '.join(REFITS)}.")
    if None in budgets:
        raise OptionError("--query needs label counts in --budgets ('all' labels the whole pool: nothing to choose).")
    if k < 1:
        raise OptionError(f"--query-batch must be at least 1, got {k}.")
    if source.labels is None:
        raise DataError(f"{source.name}: compare needs labels.")


def _todo(encoder: str, heads: Sequence[str], queries: Sequence[str], seeds: int, budgets: Sequence[int],
          done: set[tuple[str, str, int]], tag: str, refit: str) -> list[tuple[Method, str, int, set[int]]]:
    """(method, strategy, seed, budgets already done) of every trajectory with a cell still to run."""
    todo = []
    for head in heads:
        method = Method(encoder, head)
        for q in queries:
            for seed in range(seeds):
                skip = {b for b in budgets if (query_method(method, q, tag, refit), budget_label(b), seed) in done}
                if len(skip) < len(budgets):
                    todo.append((method, q, seed, skip))
    return todo


def _vectors(
    encoder: str, pool: Dataset, tests: dict[str, Dataset], cache_dir: str | Path | None,
    source_options: dict[str, Any] | None,
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """The pool's vectors, each test set's (vectors, labels), and the seconds spent encoding (through the cache)."""
    from pipeline.store.cache import EmbeddingCache
    from pipeline.encoders.registry import resolve_encoder

    start = time.perf_counter()
    texts = pool.texts + [t for ds in tests.values() for t in ds.texts]
    vectors = EmbeddingCache(cache_dir).vectors(resolve_encoder(encoder, cache_dir, source_options), texts)
    X_pool, offset, test_xy = vectors[: len(pool)], len(pool), {}
    for name, ds in tests.items():
        test_xy[name] = (vectors[offset: offset + len(ds)], ds.labels)
        offset += len(ds)
    return X_pool, test_xy, time.perf_counter() - start


def run_active_compare(
    source: Dataset,
    plan: StudyPlan,
    query: QueryPlan,
    execution: Execution = Execution(),
    *,
    test_sets: dict[str, Dataset] | None = None,
    source_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run every missing (method/strategy, budget, seed) cell of ``plan``'s encoders x heads x ``query``'s
    strategies into ``<execution.out>/results.jsonl``; returns all rows. ``query.split_name="validation"``
    scores on a validation split of the pool instead of the test split; ``query.refit`` says how each
    sample's head is fitted (:data:`REFITS`), random's included."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    encoders, heads, budgets, seeds = plan.encoders, plan.heads, plan.budgets, plan.seeds
    queries, k, settings, split_name, refit = query.queries, query.k, query.settings, query.split_name, query.refit
    cache_dir, jobs, progress = execution.cache_dir, execution.jobs, execution.progress

    _check_options(source, heads, queries, budgets, k, split_name, refit)
    pool, test = split(source)
    if split_name == "validation":
        pool, test = validation_split(pool)
    tests = {split_name: test, **(test_sets or {})}
    for b in budgets:  # a budget the pool can't supply fails now
        budget_indices(pool, b, 0)
    out = Path(execution.out)
    check_run_identity(out, source, tests)
    log = ResultsLog(out)
    budgets, tag = sorted(budgets), settings_tag(settings, k)
    for encoder in encoders:
        todo = _todo(encoder, heads, queries, seeds, budgets, log.done(), tag, refit)
        if not todo:
            continue
        X_pool, test_xy, encode_seconds = _vectors(encoder, pool, tests, cache_dir, source_options)
        data = EncodedPool(pool, X_pool, test_xy, typicality(unit_rows(X_pool), settings.typical_power))
        n_cells = sum(len(budgets) - len(skip) for *_, skip in todo)
        bar = tqdm(total=n_cells, desc=f"compare --query ({encoder})", unit="cell", disable=not progress)
        for rows in Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(trajectory_cells)(m, q, s, budgets, skip, data, query) for m, q, s, skip in todo):
            for row in rows:
                row["encode_seconds"] = round(encode_seconds / n_cells, 4)
                log.append(row)
                bar.update()
        bar.close()
    return log.rows()
