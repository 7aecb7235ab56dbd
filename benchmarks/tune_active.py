"""Choose the active-learning strategies' settings on a validation split, never the test split.

RT's pool is split again by movie (:func:`pipeline.data.dataset.validation_split`: whole movies, about one in
five, to validation); each candidate setting runs ``compare --query`` on the rest and is scored on
validation, 10 seeds, paired by seed with balanced random (run once: its samples do not depend on the
settings). Cells go to one ``results.jsonl`` (``--out``), named ``minilm+logreg[refit=...]/STRATEGY[settings
that differ from the defaults]``, so a killed run resumes and a later stage reuses earlier cells. (The
names are relative to the defaults of the code that ran them: the defaults changed after the search,
so the log it wrote names the candidates relative to ``START``.) Prints, per candidate,
the mean accuracy difference to random with its 95% t-interval at each budget. Run with the MiniLM
vectors cached (``REVIEW_TRANSFER_CACHE=/work/shared-cache`` here):

    python benchmarks/tune_active.py --stage start --stage typicality --stage refit --stage hybrid --stage cold \
        --stage uncertain
    python benchmarks/tune_active.py --stage confirm --seeds 20
    python benchmarks/tune_active.py --stage final --seeds 20 --out reports/tune-active-final
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from pipeline.active.choices import DEFAULT_REFIT
from pipeline.active.strategies import SETTINGS, QuerySettings
from pipeline.study.active_compare import DEFAULT_BATCH, QueryPlan, run_active_compare, settings_tag
from pipeline.study.compare import Execution, StudyPlan
from pipeline.data.dataset import load
from pipeline.study.report import summarise

# the settings the search started from (the defaults before it); each stage's candidates change them
START = QuerySettings(typical_power=4.0, hybrid_pool=10, uncertainty_power=1.0, ramp=0, balance=True, cold="diverse")
STRATEGIES = ("margin", "diverse", "hybrid", "typical-margin")
# candidate (strategy, settings, batch, refit) per stage, in the order they were run; each stage from
# "refit" on fits the heads with the head's defaults, which that stage chose
STAGES: dict[str, list[tuple[str, QuerySettings, int, str]]] = {
    "start": [(q, START, DEFAULT_BATCH, "cv") for q in STRATEGIES],
    "typicality": [("diverse", replace(START, typical_power=p), DEFAULT_BATCH, "cv") for p in (0.0, 1.0, 2.0, 8.0)],
    "refit": [(q, START, DEFAULT_BATCH, "default") for q in STRATEGIES],
    "hybrid": [("hybrid", replace(START, hybrid_pool=n), DEFAULT_BATCH, "default") for n in (3, 30)]
    + [("hybrid", START, 32, "default")],
    "cold": [("hybrid", replace(START, cold="typiclust"), DEFAULT_BATCH, "default"),
             ("hybrid", replace(START, cold="typiclust", cold_size=32), DEFAULT_BATCH, "default")],
    "uncertain": [("typical-margin", replace(START, uncertainty_power=q, balance=b), DEFAULT_BATCH, "default")
                  for q, b in ((1.0, False), (3.0, True), (3.0, False))]
    + [("typical-margin", replace(START, ramp=128), DEFAULT_BATCH, "default")],
    # the leaders so far, re-run with --seeds 20 to tell them apart
    "confirm": [("hybrid", START, DEFAULT_BATCH, "default"),
                ("hybrid", replace(START, cold="typiclust"), DEFAULT_BATCH, "default"),
                ("hybrid", replace(START, cold="typiclust"), 4, "default"),
                ("diverse", replace(START, cold="typiclust"), DEFAULT_BATCH, "default")],
    # every strategy with the defaults the stages above chose (SETTINGS, DEFAULT_REFIT)
    "final": [(q, SETTINGS, DEFAULT_BATCH, DEFAULT_REFIT) for q in STRATEGIES],
}


def table(rows: list[dict], budgets: list[int], split: str = "validation") -> str:
    """Markdown: each random baseline's mean accuracy, then each candidate minus the random baseline fitted
    the same way [95% t-interval] per budget."""
    summary = summarise(rows)
    tests = summary["tests"][split]
    active = summary.get("active_vs_random", {}).get(split, {})
    lines = ["| candidate | " + " | ".join(f"{b} labels" for b in budgets) + " |", "|---|" + "---:|" * len(budgets)]
    for random in sorted(m for m in tests[str(budgets[0])]["methods"] if m.endswith("/random")):
        lines.append(f"| `{random}` (accuracy) | " + " | ".join(
            f"{100 * tests[str(b)]['methods'][random]['mean']:.1f}" for b in budgets) + " |")
    for method in sorted({m for b in budgets for m in active.get(str(b), {})}):
        cells = []
        for b in budgets:
            d = active.get(str(b), {}).get(method)
            cells.append("" if d is None else f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]")
        lines.append(f"| `{method.split('+', 1)[1]}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", action="append", choices=list(STAGES), required=True)
    ap.add_argument("--budgets", default="32,128,256")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="reports/tune-active")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    source = load("rt")
    plan = StudyPlan(encoders=["minilm"], heads=["logreg"], budgets=budgets, seeds=args.seeds)
    execution = Execution(out=args.out, jobs=args.jobs, progress=False)
    rows = []
    for stage in args.stage:
        for query, settings, k, refit in STAGES[stage]:
            print(f"{stage}: {query}{settings_tag(settings, k)} refit={refit}", flush=True)
            rows = run_active_compare(source, plan, QueryPlan(["random", query], k=k, settings=settings,
                                                              split_name="validation", refit=refit), execution)
    print(f"validation split of RT's pool, minilm + logreg, {args.seeds} seeds; defaults: {SETTINGS}")
    print(table(rows, budgets))


if __name__ == "__main__":
    main()
