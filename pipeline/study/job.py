"""``compare`` end to end for one :class:`CompareJob`: the source and test sets read, the frozen cells' backends
chosen and guarded, the study (or the simulated active learning of ``--query``) run, the report written.
:func:`compare_source` is what the command calls."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import chain, count
from pathlib import Path
from typing import Any

from pipeline.encoders.probe import MIN_MEDIAN_COSINE
from pipeline.study.compare import SPLITS, Execution, StudyPlan, check_engine

@dataclass(frozen=True)
class CompareJob:
    """What ``compare`` runs: ``plan`` (its encoders parsed from ``raw_encoders``, as typed) on ``source`` and
    each of ``test_sets`` (read with ``source_options``), where ``execution`` says; with ``query``
    (a :class:`~pipeline.study.active_compare.QueryPlan`) simulated active learning instead. Frozen
    transformer cells run under ``backend``/``quantize`` (None: auto) guarded at ``min_cosine`` on the source's
    texts (local engine). ``unlabelled`` holds the texts of each ``--unlabelled`` source for self-training."""

    source: str
    raw_encoders: tuple[str, ...]
    plan: StudyPlan
    execution: Execution = Execution()
    query: Any = None
    test_sets: tuple[str, ...] = ()
    unlabelled: dict[str, list[str]] = field(default_factory=dict)
    backend: str | None = None
    quantize: str | None = None
    min_cosine: float = MIN_MEDIAN_COSINE
    source_options: dict[str, Any] = field(default_factory=dict)
    with_plot: bool = True


@dataclass(frozen=True)
class Compared:
    """What :func:`compare_source` did: the result ``rows``, the report's ``summary`` and ``title``, in ``out``."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    title: str
    out: Path


def compare_source(job: CompareJob, echo: Callable[[str], None] = print) -> Compared:
    """Run ``job`` and write its report (``report.md``, ``summary.json``, the plot); ``echo`` says what a person
    should know on the way (the backends chosen, self-training that is transductive)."""
    from pipeline.data.dataset import check_budgets, load
    from pipeline.study.report import write_report

    opts, execution = job.source_options, job.execution
    check_engine(list(job.plan.encoders), execution.engine)  # before the data are read
    ds = load(job.source, **opts)
    if job.query is None:  # before the encoders are exported and probed (active compare checks its own)
        check_budgets(ds, job.plan.budgets)
    names = test_set_names(job.test_sets)
    for path, name in zip(job.test_sets, names):
        if name != Path(path).stem:
            echo(f"--test-set {path}: reported as `{name}` (`{Path(path).stem}` names another set)")
    extra = {name: load_test_set(p, job.source, opts, echo) for p, name in zip(job.test_sets, names)}
    specs = [_one_sided(spec, ds.texts, echo) for spec in job.plan.encoders]
    backends = _frozen_backends(job, specs, ds.texts, echo)  # on Ray too: its workers then run what embed ran
    title = f"compare on {job.source}" + _transductive_note(ds, job.unlabelled, extra, echo)
    if job.query is not None:  # simulated active learning, always beside balanced random
        from pipeline.study.active_compare import run_active_compare

        # active compare builds its encoders from specs: name the backends in them
        named = [str(_named(s, backends[str(s)]) if backends.get(str(s)) else s) for s in specs]
        plan = StudyPlan(encoders=named, heads=job.plan.heads, budgets=job.plan.budgets, seeds=job.plan.seeds)
        rows = run_active_compare(ds, plan, job.query, Execution(out=execution.out, cache_dir=execution.cache_dir,
                                                                 jobs=execution.jobs),
                                  test_sets=extra, source_options=opts)
    else:
        from pipeline.study.compare import run_compare

        rows = run_compare(ds, replace(job.plan, encoders=specs, backends=backends), execution, test_sets=extra,
                           unlabelled=job.unlabelled, source_options=opts)
    out = Path(execution.out)
    return Compared(rows, write_report(rows, out, title=title, with_plot=job.with_plot), title, out)


def load_test_set(path: str, source: str, opts: dict[str, Any], echo: Callable[[str], None] = print) -> Any:
    """``--test-set`` ``path`` read with SOURCE's column options, or, where those do not fit it, with the default
    ones (``text``, ``label`` of known names: a file from another site) and a line saying so; else a DataError
    saying what to do (not the SOURCE options its reader would suggest)."""
    from pipeline.data.dataset import Columns, DataError, load

    try:
        return load(path, **opts)
    except DataError as e:
        with contextlib.suppress(DataError):
            if source != "rt" and any(opts.get(k, v) != v for k, v in asdict(Columns()).items()):
                own = load(path)
                echo(f"--test-set {path}: read with its own columns 'text' and 'label' (SOURCE's options do not fit "
                     f"it: {str(e).split(': ', 1)[-1].split('. ')[0]})")
                return own
        fix = ("rt ignores those options, so give the file's own names (--text-col, --label-col, --positive)"
               if source == "rt" else "give it the same column names and label values as SOURCE, or name its "
               "columns 'text' and 'label' with labels such as positive/negative")
        detail = str(e).split(" Pass the right name with")[0]  # not the option: it would change SOURCE's reading too
        raise DataError(f"--test-set {detail} A --test-set is read with SOURCE's column options: {fix}.") from None


def test_set_names(paths: Sequence[str]) -> list[str]:
    """A report name per ``--test-set`` file: its stem, or where that names the source's split or an earlier
    file, its folder and stem, else the stem numbered; so no set's scores replace another's."""
    names: list[str] = []
    for path in map(Path, paths):
        folder = f"{path.parent.name}-{path.stem}" if path.parent.name else path.stem
        tries = chain((path.stem, folder), (f"{path.stem}-{i}" for i in count(2)))
        names.append(next(n for n in tries if n not in SPLITS and n not in names))
    return names


def _transductive_note(ds: Any, unlabelled: dict[str, list[str]], test_sets: dict[str, Any],
                       echo: Callable[[str], None]) -> str:
    """A title suffix when --unlabelled texts include texts of ``ds``'s test split or of a --test-set
    (scores on those sets are then transductive; else empty)."""
    from pipeline.data.dataset import split

    given = {t for texts in unlabelled.values() for t in texts}
    counts = {name: len(given & set(test.texts)) for name, test in {"test split": split(ds)[1], **test_sets}.items()}
    seen = ", ".join(f"{n:,} texts of {name}" for name, n in counts.items() if n)
    if seen:
        echo(f"warning: --unlabelled includes {seen}: self-training is transductive there.")
    return f" (transductive: {seen} among the unlabelled)" if seen else ""


def _one_sided(spec: Any, texts: list[str], echo: Callable[[str], None]) -> Any:
    """``spec``, or a routed one's other side alone where too few texts read as English (said in one line)."""
    from pipeline.encoders.routed import other_side_alone

    spec, line = other_side_alone(spec, texts)
    if line:
        echo(f"compare: {line}")
    return spec


def _frozen_backends(job: CompareJob, specs: list[Any], texts: list[str],
                     echo: Callable[[str], None]) -> dict[str, dict[str, str]]:
    """Spec -> ``{"backend", "quantize"}`` the frozen cells of ``compare`` run (backend auto or as given, guarded
    on ``texts``); fine-tuning cells train the torch model whatever this says."""
    from pipeline.encoders.auto import chooses_backend, command_encoder
    from pipeline.paths import cache_dir_or_default

    chosen = {}
    for raw, spec in zip(job.raw_encoders, specs):
        if not chooses_backend(raw, job.backend, job.quantize):
            continue
        options = {"work_dir": cache_dir_or_default(job.execution.cache_dir), "source_options": job.source_options}
        enc, lines = command_encoder(raw, spec, texts, options, backend=job.backend, quantize=job.quantize,
                                     min_median=job.min_cosine)
        for line in lines:
            echo(line)
        parts = getattr(enc, "parts", None)
        if parts is not None:  # each part as it runs alone (A+B, E|O): e5 beside mpnet's static int8 keeps int8 weights
            chosen[str(spec)] = {"parts": [_exported(p) for p in parts]}
        elif _exported(enc):
            chosen[str(spec)] = _exported(enc)
    return chosen


def _exported(encoder: Any) -> dict[str, str]:
    """``{"backend", "quantize"}`` of an exported encoder; empty for any other (torch, an engine, word vectors)."""
    return {"backend": encoder.backend, "quantize": encoder.quantize} if hasattr(encoder, "export_dir") else {}


def _named(spec: Any, options: dict[str, Any]) -> Any:
    """``spec`` with the backend options :func:`_frozen_backends` chose for it (a combined spec's on each part)."""
    if "parts" in options:
        return spec.with_part_options(options["parts"])
    return spec.with_options(options)
