"""compare: learning curves over label budgets x seeds x methods, resumable, on paired samples.

A *method* is a frozen encoder with a scikit-learn head (``minilm+logreg``) or a fine-tuning
recipe (``minilm+finetune-head``). A *cell* is one (method, budget, seed). For a given budget and
seed every method trains on the same balanced sample of the pool, so differences are paired.
Each text is encoded at most once per encoder for the whole grid (through the cache), frozen cells
go to an engine (:mod:`pipeline.study.engines`: joblib workers, or Ray tasks), and every finished cell is appended to ``results.jsonl`` at once: a
killed run resumes where it stopped, and a rerun with more seeds or budgets computes only new cells.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.study.engines.cells import SCORES, budget_label, scores
from pipeline.data.dataset import Dataset, DataError, budget_indices, check_budgets, split, validation_split
from pipeline.study.engines.base import Cell, CellOptions, Method
from pipeline.data.jsonlines import drop_partial_line
from pipeline.disk import explain_full_disk
from pipeline.encoders.routed import for_prediction, layout_of
from pipeline.encoders.spec import DEFAULT_ENCODER
from pipeline.heads.prompts import DEFAULT as DEFAULT_PROMPTS, prompt_strength

RESULTS = "results.jsonl"
RUN_FILE = "run.json"
CELLS_FIX = "free some space there and rerun: the cells done so far are kept, and a rerun computes only the others"
SPLITS = ("test", "validation")  # the source's own held-out splits a study scores on
SPLIT_FINETUNE = "--split validation scores frozen heads; fine-tuning cells score the test split: drop --finetune."

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "encoders": ["glove-6b-50d", "minilm", DEFAULT_ENCODER],
        "heads": ["logreg"],
        "finetune": [],
        "budgets": "32,128,1000",
        "seeds": 3,
    },
    "full": {
        # mpnet[layers=9-12]: frozen heads only (not fine-tunable); one pass of mpnet over the source (auto's export)
        "encoders": ["glove-6b-50d", "w2v-train:{source}", "minilm", "minilm+w2v-train:{source}", "mpnet[layers=9-12]"],
        "heads": ["logreg", "linear-svm", "rbf-svm", "knn", "mlp"],
        "finetune": ["head", "setfit"],
        "budgets": "16,32,64,128,256,512,1000,all",
        "seeds": 5,
        "self_train": True,  # every method also self-trained (distilled, if fine-tuned) on the rest of the pool
    },
}


def cell_key(method: str, budget: int | None, seed: int) -> tuple[str, str, int]:
    """The identity of a cell in ``results.jsonl``."""
    return method, budget_label(budget), seed


# ---------------------------------------------------------------------------------------------- log
class ResultsLog:
    """Append-only ``results.jsonl``: one JSON row per finished cell, fsynced as it is written.

    A run killed while writing leaves at most one partial last line, which is ignored on reading
    (and cut off before the next append), so the file never holds a corrupt row.
    """

    def __init__(self, out: Path):
        self.path = Path(out) / RESULTS

    def rows(self) -> list[dict[str, Any]]:
        """All complete rows, in the order written."""
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a partial last line from a killed run
        return rows

    def done(self) -> set[tuple[str, str, int]]:
        """Keys of the cells already finished."""
        return {(r["method"], r["budget"], r["seed"]) for r in self.rows()}

    def append(self, row: dict[str, Any]) -> None:
        """Write one finished cell durably."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        drop_partial_line(self.path)
        with explain_full_disk(self.path.parent, "a finished cell", CELLS_FIX), \
                open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _strength_note(recorded: dict[str, Any] | None) -> str:
    """Where a directory's prompt prior was fitted at another strength than this version's, say so."""
    if recorded is None or recorded.get("strength") == prompt_strength():
        return ""
    was = recorded.get("strength")
    return (f", fitted at the prompt strength {was['formula'] if was else 'of an older version'}, "
            f"not this version's {prompt_strength()['formula']}")


def check_run_identity(out: Path, source: Dataset, test_sets: dict[str, Dataset], adapt_prior: bool = False,
                       unlabelled: dict[str, list[str]] | None = None, prompts: Any = None) -> None:
    """Refuse to mix results of different data (or with and without --adapt-prior, other --unlabelled
    texts or other --prompts) in one ``--out``; record them on first use."""
    identity: dict[str, Any] = {
        "source": source.name,
        "source_fingerprint": source.fingerprint(),
        "test_sets": {name: ds.fingerprint() for name, ds in test_sets.items()},
    }
    if unlabelled:  # absent otherwise, so older directories still match
        from pipeline.data.unlabelled import texts_hash

        identity["unlabelled"] = {name: texts_hash(texts) for name, texts in unlabelled.items()}
    if adapt_prior:  # rows then carry adapted scores; absent otherwise, so older directories still match
        identity["adapt_prior"] = True
    if prompts is not None:  # absent with --prompts none: directories from before the prompt prior match that
        identity["prompts"] = {**prompts.record(), "strength": prompt_strength()}
    path = Path(out) / RUN_FILE
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != identity:
            reread = previous["source"] == identity["source"] and previous["source_fingerprint"] != \
                identity["source_fingerprint"]  # the same file read otherwise: say so, the name alone reads the same
            how = " read with other rows or labels: a changed file, --positive/--negative or columns" if reread else ""
            raise DataError(
                f"{out}: holds results for other data (source {previous['source']!r}{how}, test sets "
                f"{sorted(previous['test_sets'])}{', with --adapt-prior' if previous.get('adapt_prior') else ''}"
                f"{', --unlabelled ' + ' '.join(previous['unlabelled']) if previous.get('unlabelled') else ''}, "
                f"--prompts {previous['prompts']['source'] if previous.get('prompts') else 'none'}"
                f"{_strength_note(previous.get('prompts'))}); use a new --out directory, or the same data, "
                "--test-set, --unlabelled files, --adapt-prior and --prompts settings."
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        with explain_full_disk(path.parent, path.name, "free some space there, or write the report elsewhere (--out DIR)"):
            tmp.write_text(json.dumps(identity, indent=2), encoding="utf-8")
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- cells
def _domain_shift(encoder: Any, cache_dir: Path, pool: Dataset, tests: dict[str, Dataset]) -> dict[str, dict[str, Any]]:
    """Per test set, the two-sample shift check (see :mod:`pipeline.predict.shift`) of a seeded sample of its
    vectors against one of the pool's, read from the filled cache (so both engines get the same figure)."""
    from pipeline.store.cache import EmbeddingCache
    from pipeline.encoders.language import THRESHOLD as LANGUAGE_THRESHOLD
    from pipeline.encoders.language import check as language_check
    from pipeline.encoders.language import english_share
    from pipeline.predict.shift import MIN_TEXTS, SAMPLE, no_check, two_sample_auc

    cache = EmbeddingCache(cache_dir)

    def sample(texts: list[str]) -> np.ndarray:
        idx = np.sort(np.random.default_rng(0).permutation(len(texts))[:SAMPLE])
        return cache.vectors(encoder, [texts[i] for i in idx])

    X_pool, pool_english = sample(pool.texts), english_share(pool.texts)
    out = {}
    for name, ds in tests.items():
        # a test set mostly in another language than the pool is told from it by its language alone (AUC 1.00 under
        # every encoder, multilingual ones included): there the check has nothing to say about the site
        english = english_share(ds.texts)
        if abs(english - pool_english) > LANGUAGE_THRESHOLD:
            out[name] = no_check(f"another language: {english:.0%} of its texts read as English, {pool_english:.0%} of "
                                 "the pool's; the check would only tell the languages apart")
            continue
        check = two_sample_auc(X_pool, sample(ds.texts))
        out[name] = check.to_dict() if check is not None else no_check(f"fewer than {MIN_TEXTS} texts")
    for name, ds in tests.items():  # and the share of its texts outside the encoder's language
        found = language_check(encoder, ds.texts)
        out[name]["outside_language"] = None if found is None else found.as_dict()
    return out


def _frozen_cells(
    todo: dict[Method, list[tuple[int | None, int]]], pool: Dataset, tests: dict[str, Dataset], rows: np.ndarray,
    options: dict[str, Any], unlabelled: Any,
) -> Iterator[Cell]:
    """The cells of each (budget, seed) of each method in ``todo``; ``rows`` are what the engine's cells
    carry for the run's texts (pool, then each test set, then extra unlabelled texts).

    Each (budget, seed) sample and its CV folds are made once and shared by every method; the
    largest budgets come first, so the slowest cells do not finish last on one worker. Self-training
    cells get the rows of their unlabelled texts (``unlabelled(idx)[1]``: row numbers for a sample ``idx``).
    """
    from pipeline.heads.registry import plan_folds

    X_pool = rows[: len(pool)]
    offset = len(pool)
    test_xy = {}
    for name, ds in tests.items():
        test_xy[name] = (rows[offset: offset + len(ds)], ds.labels)
        offset += len(ds)
    wanted = {method: set(cells) for method, cells in todo.items()}
    order = sorted(set().union(*wanted.values()), key=lambda c: (-(len(pool) if c[0] is None else c[0]), c[1]))
    for budget, seed in order:
        idx = budget_indices(pool, budget, seed)
        groups = None if pool.groups is None else [pool.groups[i] for i in idx]
        folds = plan_folds(pool.labels[idx], groups, seed)
        for method, cells in wanted.items():
            if (budget, seed) in cells:
                extra = {"X_unlabelled": rows[unlabelled(idx)[1]]} if method.self_train else {}
                yield Cell(method, budget, seed, X_pool[idx], pool.labels[idx], groups, test_xy, folds,
                           CellOptions(**options, **extra))


def _finetunable_encoders(encoders: Sequence[str], finetune: Sequence[str]) -> list[str]:
    """The encoders ``finetune`` methods apply to: those with a network to train; the rest are named
    in a warning. None at all is an error, so a typo fails before any work."""
    from pipeline.finetune.body import FINETUNABLE, finetunable

    if not finetune:
        return []
    chosen = [e for e in encoders if finetunable(e)]
    if not chosen:
        raise OptionError(f"--finetune needs an encoder that can be fine-tuned ({FINETUNABLE}); got {', '.join(encoders)}.")
    skipped = [e for e in encoders if e not in chosen]
    if skipped:
        warnings.warn(f"fine-tuning {', '.join(chosen)} only: {', '.join(skipped)} cannot be fine-tuned "
                      "(no network to back-propagate through, or a frozen pooling of layers); they get frozen "
                      "heads alone.", stacklevel=3)
    return chosen


def _finetune_cell(method: Method, budget: int | None, seed: int, run: _Run, work_dir: Path, options: dict[str, Any],
                   self_train: Any = None) -> dict[str, Any]:
    """Fine-tune on a ``budget`` sample of ``run``'s pool (or, for a self-training method, distil with the sample's
    unlabelled texts) and score on its test sets."""
    from pipeline.finetune import Runtime, finetune_and_score, recipe_for

    pool, tests = run.pool, run.tests
    idx = budget_indices(pool, budget, seed)
    train = pool.subset(idx)
    work = work_dir / re.sub(r"[^A-Za-z0-9_.+-]+", "_", f"{method.name}-b{budget_label(budget)}-s{seed}")
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    recipe = recipe_for(method.encoder, method.head, **options)
    if method.self_train:
        from pipeline.data.unlabelled import Unlabelled
        from pipeline.unlabelled.self_train import Teacher, distil

        bundle = distil(train, Unlabelled(run.unlabelled(idx)[0]), out=work / "bundle", work_dir=work / "work",
                        teacher=Teacher(method.encoder, recipe), settings=self_train, seed=seed, test=tests["test"],
                        runtime=Runtime(progress=False))
        record = bundle.manifest["self_train"]
        fit_seconds, start_encode = record["seconds"], time.perf_counter()
        enc = bundle.get_encoder()  # the test split was scored by distil; the other sets are scored here
        probas = {name: bundle.head.predict_proba(enc.encode(ds.texts)) for name, ds in tests.items() if name != "test"}
        encode_seconds = time.perf_counter() - start_encode
        extra["self_train"] = {k: record[k] for k in ("fraction", "threshold", "soft", "rounds", "rounds_run", "pseudo_cap",
                                                     "cost_vs_teacher")}
        extra["self_train"].update(teacher_seconds=record["teacher"]["seconds"],
                                   teacher_test={k: record["teacher"]["test_metrics"][k] for k in SCORES})
        extra["metrics"] = {"test": {k: bundle.manifest["metrics"]["test"][k] for k in SCORES}}
        shutil.rmtree(work, ignore_errors=True)
    else:
        probas, fit_seconds, encode_seconds = finetune_and_score(
            train, tests, encoder=method.encoder, recipe=recipe, seed=seed, work_dir=work)
    return {
        "method": method.name,
        "encoder": method.encoder,
        "head": method.head,
        "kind": "finetune",
        "budget": budget_label(budget),
        "n_train": len(train),
        "seed": seed,
        "params": {},
        "fit_seconds": round(fit_seconds, 4),
        "encode_seconds": round(encode_seconds, 4),
        "total_seconds": round(time.perf_counter() - start, 4),
        **extra,
        "metrics": {**extra.get("metrics", {}), **{name: scores(tests[name].labels, p) for name, p in probas.items()}},
    }


def _unlabelled_sets(pool: Dataset, test: Dataset, extra: dict[str, list[str]] | None, texts: list[str]) -> Any:
    """A function of a budget sample ``idx``: its unlabelled texts (:func:`pipeline.data.unlabelled.gather`:
    the rest of the pool, labels hidden, plus ``extra``) and their row numbers in ``texts`` (the texts
    whose vectors the run holds; ``extra`` texts are appended to ``texts``)."""
    from pipeline.data.unlabelled import gather

    row = {t: i for i, t in reversed(list(enumerate(texts)))}
    for t in (t for source in (extra or {}).values() for t in source):
        if t not in row:
            row[t] = len(texts)
            texts.append(t)

    def unlabelled(idx: np.ndarray) -> tuple[list[str], np.ndarray]:
        unl = gather(pool, idx if len(idx) < len(pool) else None, test, extra)
        return unl.texts, np.array([row[t] for t in unl.texts], dtype=np.int64)

    return unlabelled


def _with_shift(row: dict[str, Any], shift: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """``row`` with each test set's ``domain_shift`` entry for its encoder (fine-tuned cells: the frozen
    encoder's vectors, when this run computed them)."""
    for name, entry in shift.get(row["encoder"], {}).items():
        row["metrics"][name]["domain_shift"] = entry
    return row


# ---------------------------------------------------------------------------------------------- run
@dataclass(frozen=True)
class StudyPlan:
    """What ``compare`` runs: every (method, budget, seed) cell of these encoders x heads and fine-tuning methods.

    ``finetune_options`` are recipe settings for every fine-tuning cell (e.g. ``{"epochs": 2}``; see
    :func:`pipeline.finetune.make_recipe`). ``adapt_prior`` also scores frozen cells after class-prior
    adaptation (see :func:`pipeline.study.engines.cells.fit_frozen_cell`). With ``self_train`` (a
    :class:`~pipeline.unlabelled.self_train.SelfTrainSettings`) every method also runs self-trained
    (``...+self-train``; fine-tuning methods distil). ``prompts`` (:mod:`pipeline.heads.prompts`; ``None``:
    off) give the linear heads of frozen cells their prompt prior. ``backends`` (spec -> ``{"backend",
    "quantize"}``, or ``{"parts": [...]}`` one such per part of a combined spec, as ``compare``'s backend auto chose) run the frozen cells of those encoders from an export;
    fine-tuning cells train the torch model. ``out_of_core`` trains the ``sgd`` head's whole-pool cells chunk by
    chunk (on Ray, each chunk read from the shared cache).
    """

    encoders: Sequence[str]
    heads: Sequence[str] = ("logreg",)
    finetune: Sequence[str] = ()
    finetune_options: dict[str, Any] = field(default_factory=dict)
    budgets: Sequence[int | None] = (32, 128, 1000)
    seeds: int = 3
    adapt_prior: bool = False
    self_train: Any = None
    prompts: Any = DEFAULT_PROMPTS
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)  # spec -> backend, quantize (or parts) of its frozen cells
    out_of_core: Any = None  # pipeline.fit.out_of_core.OutOfCore: sgd's whole-pool cells trained chunk by chunk
    split: str = "test"  # scored: the test split, or "validation" carved out of the pool (the test split never read)


@dataclass(frozen=True)
class Execution:
    """Where a study's cells run and what they write: ``out`` (the results file and report), the embedding
    cache, ``jobs`` parallel processes, and the engine (``ray``: encodes on Ray workers and runs frozen cells
    as Ray tasks at ``address``; the cache must be on a shared filesystem; see :mod:`pipeline.study.engines`)."""

    out: str | Path = "reports/compare"
    cache_dir: str | Path | None = None
    jobs: int = 1
    progress: bool = True
    engine: str = "local"
    address: str | None = None


def run_compare(
    source: Dataset,
    plan: StudyPlan,
    execution: Execution = Execution(),
    *,
    test_sets: dict[str, Dataset] | None = None,
    unlabelled: dict[str, list[str]] | None = None,
    source_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run every missing cell of ``plan`` on ``source``, appending each to ``<execution.out>/results.jsonl``.

    ``test_sets`` are extra labelled sets (e.g. another site's reviews) scored besides the held-out
    test split of ``source``. Self-training's unlabelled texts are the pool texts outside each budget
    sample, labels hidden (only texts or vectors reach the self-training code), plus the ``unlabelled``
    texts by source. ``source_options`` (text_col, ...) read the SOURCE of ``w2v-train:SOURCE`` encoders.
    Returns all rows of the results file (old and new).
    """
    from pipeline.paths import cache_dir_or_default
    from pipeline.study.engines import get_engine
    from pipeline.progress import progress_bar

    if source.labels is None:
        raise DataError(f"{source.name}: compare needs labels.")
    budgets, seeds, adapt_prior, self_train, prompts = (plan.budgets, plan.seeds, plan.adapt_prior, plan.self_train,
                                                        plan.prompts)
    encoders, methods = _methods(plan, execution.engine, unlabelled)
    check_budgets(source, budgets)  # a budget the pool can't supply fails now, not after hours
    pool, test = split(source)
    if plan.split == "validation":  # whole groups of the pool; the test split is never encoded or scored
        pool, test = validation_split(pool)
    cache_dir = cache_dir_or_default(execution.cache_dir)
    quiet = None if execution.progress else False  # None: a bar on a terminal, a line now and then elsewhere
    runner = get_engine(execution.engine, cache_dir, jobs=execution.jobs, address=execution.address, progress=quiet,
                        source_options=source_options)
    tests = {plan.split: test, **(test_sets or {})}
    out = Path(execution.out)
    check_run_identity(out, source, tests, adapt_prior, unlabelled, prompts)
    log = ResultsLog(out)
    done = log.done()
    todo = {m: [(b, s) for b in budgets for s in range(seeds) if cell_key(m.name, b, s) not in done
                and not (m.self_train and b is None and not unlabelled)]  # the whole pool labelled: none left
            for m in methods}
    texts = pool.texts + [t for ds in tests.values() for t in ds.texts]
    run = _Run(pool, tests, texts, _unlabelled_sets(pool, test, unlabelled, texts), cache_dir, runner, log,
               progress_bar(sum(map(len, todo.values())), "compare", "cell", quiet if any(todo.values()) else False),
               prompts, dict(plan.backends))
    with run.bar:
        for encoder_spec in encoders:
            frozen = {m: todo[m] for m in methods if m.encoder == encoder_spec and not m.finetune and todo[m]}
            if frozen:
                _run_frozen(run, encoder_spec, frozen, source_options, {
                    "adapt_prior": adapt_prior, "self_train": self_train,
                    "out_of_core": None if plan.out_of_core is None else plan.out_of_core.record()})
            for m in (m for m in methods if m.encoder == encoder_spec and m.finetune):
                for b, s in todo[m]:
                    run.record(_finetune_cell(m, b, s, run, out / "finetune", dict(plan.finetune_options), self_train))
    return log.rows()


def check_engine(encoders: list[Any], engine: str) -> None:
    """OptionError when ``engine`` is not local and an encoder spec routes by language (E|O, the default
    ``multilingual``): Ray's workers encode with one encoder, not a side per text."""
    from pipeline.encoders.spec import parse_spec

    routed = [str(spec) for spec in encoders if parse_spec(spec).route]
    if routed and engine != "local":
        raise OptionError(f"compare --engine {engine} does not run a routed encoder ({', '.join(routed)}; the "
                          "default, multilingual, is one): run --engine local, or name --encoder 'mpnet[layers=9-12]'.")


def _methods(plan: StudyPlan, engine: str, unlabelled: dict[str, list[str]] | None) -> tuple[list[str], list[Method]]:
    """(encoder specs, methods) of a run, every spec, head and option checked before any work."""
    from pipeline.heads.registry import get_head
    from pipeline.encoders.spec import parse_spec

    encoders, heads, finetune, adapt_prior, self_train = (plan.encoders, plan.heads, plan.finetune, plan.adapt_prior,
                                                          plan.self_train)

    encoders = [str(spec) for spec in map(parse_spec, encoders)]
    check_engine(encoders, engine)
    for head in heads:
        get_head(head)
    if engine != "local" and (adapt_prior or self_train is not None):
        raise OptionError(f"{'--adapt-prior' if adapt_prior else 'self-training'} runs with --engine local only.")
    if self_train is None and unlabelled:
        raise OptionError("unlabelled texts are used by self-training: add --self-train.")
    if plan.split != "test" and finetune:
        raise OptionError(SPLIT_FINETUNE)
    methods = [Method(e, h) for e in encoders for h in heads] + [
        Method(e, f, True) for e in _finetunable_encoders(encoders, finetune) for f in finetune]
    if self_train is not None:
        tag = self_train.tag
        methods += [Method(m.encoder, m.head, m.finetune, True, tag) for m in methods]
    return encoders, methods


@dataclass
class _Run:
    """What every cell of one compare run shares, and where finished rows go."""

    pool: Dataset
    tests: dict[str, Dataset]
    texts: list[str]  # pool, then each test set, then extra unlabelled texts: the rows engines return
    unlabelled: Any  # budget sample idx -> (its unlabelled texts, their row numbers in ``texts``)
    cache_dir: Path
    engine: Any  # pipeline.study.engines.Engine
    log: ResultsLog
    bar: Any
    prompts: Any  # pipeline.heads.prompts.Prompts, or None
    backends: dict[str, dict[str, Any]]  # spec -> backend and quantize (or each part's) of its frozen cells (default: torch)
    shift: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # encoder -> test set -> entry

    def record(self, row: dict[str, Any]) -> None:
        """Save a finished cell (with its encoder's domain-shift checks) and count it."""
        self.log.append(_with_shift(row, self.shift))
        self.bar.update()


def _needed_rows(run: _Run, todo: dict[Method, list[tuple[int | None, int]]]) -> np.ndarray | None:
    """Row numbers of ``run.texts`` that the frozen cells in ``todo`` read: their budget samples of the pool and
    every test set; ``None`` (every row) when a cell trains on the whole pool or self-trains on the rest of it."""
    cells = [(m, b, s) for m, todo_m in todo.items() for b, s in todo_m]
    if any(m.self_train or b is None for m, b, _ in cells):
        return None
    pool_rows = set()
    for budget, seed in {(b, s) for _, b, s in cells}:
        pool_rows.update(budget_indices(run.pool, budget, seed).tolist())
    return np.array(sorted(pool_rows) + list(range(len(run.pool), len(run.texts))), dtype=np.int64)


def _rows(run: _Run, encoder: Any, needed: np.ndarray | None) -> np.ndarray:
    """What the engine's cells carry for ``run.texts``, encoding only the ``needed`` rows (None: all); the
    others are never read (zero vectors, or the keys of texts never cached on Ray). A routed encoder reads the
    test sets' texts as a bundle predicts them, each with its own side only (the heads read no other column)."""
    scoring = for_prediction(encoder)
    if scoring is not encoder:
        start, stop = len(run.pool), len(run.pool) + sum(len(ds) for ds in run.tests.values())
        rows = np.arange(len(run.texts)) if needed is None else needed
        tested = (rows >= start) & (rows < stop)
        return _some_rows(run, [(encoder, rows[~tested]), (scoring, rows[tested])])
    if needed is None or len(needed) == len(run.texts):
        return run.engine.rows(encoder, run.texts)
    return _some_rows(run, [(encoder, needed)])


def _some_rows(run: _Run, pieces: list[tuple[Any, np.ndarray]]) -> np.ndarray:
    """Rows of ``run.texts``: each (encoder, row numbers) piece's from its encoder, the rest never read (zeros)."""
    out: np.ndarray | None = None
    for encoder, idx in pieces:
        if not len(idx):
            continue
        part = np.asarray(run.engine.rows(encoder, [run.texts[i] for i in idx]))
        if out is None:
            out = np.zeros((len(run.texts), *part.shape[1:]), dtype=part.dtype)
        out[idx] = part
    assert out is not None, "no rows to encode"
    return out


def _run_frozen(run: _Run, encoder_spec: str, todo: dict[Method, list[tuple[int | None, int]]],
                source_options: dict[str, Any] | None, options: dict[str, Any]) -> None:
    """Cache the run's texts for one encoder, then hand its frozen cells in ``todo`` to the engine."""
    from pipeline.encoders import get_encoder

    encoder = get_encoder(encoder_spec, work_dir=run.cache_dir, source_options=source_options,
                          **run.backends.get(encoder_spec, {}))
    start = time.perf_counter()
    rows = _rows(run, encoder, _needed_rows(run, todo))
    encode_seconds = time.perf_counter() - start
    run.shift[encoder_spec] = _domain_shift(for_prediction(encoder), run.cache_dir, run.pool, run.tests)  # as bundles check
    if run.prompts is not None:
        from pipeline.heads.prompts import encoded_direction

        options = {**options, "prompt_direction": encoded_direction(run.prompts, encoder, run.cache_dir)}
    n_cells = sum(map(len, todo.values()))
    layout = layout_of(encoder)  # routed: a head per language side
    cells = _frozen_cells(todo, run.pool, run.tests, rows, {**options, "shift": run.shift[encoder_spec], "layout": layout},
                          run.unlabelled)
    for row in run.engine.run(encoder, cells):
        row["encode_seconds"] = round(encode_seconds / n_cells, 4)  # amortised share of this run's encoding
        run.record(row)
