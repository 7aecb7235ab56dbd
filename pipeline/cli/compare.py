"""The ``compare`` command: learning curves over budgets x seeds x encoders x heads."""

from __future__ import annotations

from typing import Any

import click

from pipeline.cli.options import (
    ENCODER_HELP, HEADS_HELP, _backend_options, _encoder_flags, _engine_options, _handle_errors, _query_options,
    prompts_option, source_options,
)
from pipeline.encoders.spec import DEFAULT_ENCODER
from pipeline.cli.unlabelled import pop_unlabelled, unlabelled_options


# ---------------------------------------------------------------------------------------------- compare
@click.command(short_help="Learning curves: which encoder and head win at each budget.")
@click.argument("source")
@source_options
@click.option("--preset", type=click.Choice(["quick", "full"]), default=None,
              help="quick: GloVe, MiniLM and the default (multilingual) + logreg at 32/128/1000 labels, 3 seeds "
                   "(about 3 min on 2 cores the first time, most of it exporting the transformers and encoding "
                   "with mpnet). "
                   "full: static vs transformer features vs fine-tuning, each also self-trained on the rest of the "
                   "pool (--self-train), over all budgets, 5 seeds (hours). "
                   "Options given explicitly override the preset.")
@click.option("--encoder", "encoders", multiple=True,
              help=ENCODER_HELP + f" [default: the preset's, else {DEFAULT_ENCODER}] Repeatable: variants of one encoder (minilm[long=truncate] and minilm) are "
                                  "compared side by side, each with its own cache.")
@_encoder_flags
@click.option("--head", "heads", multiple=True, help=HEADS_HELP + "  [default: the preset's, else logreg]")
@click.option("--finetune", "finetune", multiple=True, type=click.Choice(["head", "setfit"]),
              help="Also fine-tune each encoder end to end with this method (repeatable).")
@click.option("--budgets", default=None, help="Label budgets, comma-separated; 'all' = the whole pool.  [default: 32,128,1000]")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="Seeds per budget (0..N-1).  [default: 3]")
@click.option("--test-set", "test_sets", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Extra labelled file to score every cell on (out-of-domain transfer; repeatable), read with "
                   "SOURCE's column options (--text-col, --label-col, --positive), or, where they do not fit it, as "
                   "text and label columns with known label names (said in one line); reported under its file "
                   "name.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Report directory; rerunning with the same --out resumes.  [default: reports/<preset or compare>]")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=-1), help="Cells fitted in parallel processes (joblib; -1 = all cores).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="Embedding cache (default: $REVIEW_TRANSFER_CACHE or ./cache).")
@click.option("--no-plot", is_flag=True, help="Skip the PNG plot (no matplotlib needed).")
@click.option("--adapt-prior", is_flag=True,
              help="Also score each frozen cell with guarded class-prior adaptation (as evaluate --adapt-prior): "
                   "adapted and plain accuracy side by side, with the decision and why, per test set.")
@click.option("--out-of-core", is_flag=True, help="Train the sgd head's whole-pool ('all') cells chunk by chunk, as "
              "fit --out-of-core does (on Ray, each chunk read from the shared cache).")
@prompts_option
@unlabelled_options
@_engine_options
@_query_options
@_backend_options
@_handle_errors
def compare(source: str, preset: str | None, encoders: tuple[str, ...], heads: tuple[str, ...],
            finetune: tuple[str, ...], budgets: str | None, seeds: int | None, test_sets: tuple[str, ...],
            out: str | None, jobs: int, cache_dir: str | None, no_plot: bool, adapt_prior: bool, out_of_core: bool,
            prompts: str, engine: str,
            address: str | None, queries: tuple[str, ...], query_batch: int, query_refit: str, split_name: str,
            precision: str | None,
            max_length: int | None, pooling: str | None, long_text: str | None, backend: str | None,
            quantize: str | None, min_cosine: float, **opts: Any) -> None:
    """Learning curves: which encoder and head win at each label budget, over several seeds.

    Every method trains on the same balanced sample for a given budget and seed (paired), is
    scored on the held-out test split of SOURCE and on each --test-set, and each finished cell
    is appended to OUT/results.jsonl, so a killed run resumes and more seeds or budgets only
    compute the new cells. Writes OUT/summary.json, OUT/report.md and OUT/learning_curves.png.

    \b
    Examples:
      review-transfer compare rt --preset quick
      review-transfer compare rt --encoder minilm --head logreg --head rbf-svm --budgets 16,64,256,all --seeds 5
      review-transfer compare rt --encoder minilm --head logreg --finetune head --budgets 128,1000
      review-transfer compare rt --encoder minilm --test-set other_site.csv --adapt-prior
      review-transfer compare rt --encoder minilm --query margin --query hybrid --budgets 32,128,256 --seeds 10
      review-transfer compare rt --encoder minilm --encoder glove-6b-50d --split validation   (choose; test unread)
      review-transfer compare rt --encoder minilm --query diverse --split validation --out reports/tune
      review-transfer compare rt --encoder minilm --finetune head --self-train --budgets 128,1000
      review-transfer compare rt --encoder "minilm[long=truncate]" --encoder minilm --budgets 128 --seeds 2

    \b
    --self-train adds METHOD+self-train for every method: the pool texts outside each budget sample are
    its unlabelled texts (their labels hidden from it), plus any --unlabelled SOURCE.
    """
    from pathlib import Path

    from pipeline.data.dataset import parse_budgets
    from pipeline.encoders.spec import EncoderOptions
    from pipeline.fit.out_of_core import OutOfCore
    from pipeline.heads.prompts import resolve_prompts
    from pipeline.heads.registry import get_head
    from pipeline.study.compare import PRESETS, SPLIT_FINETUNE, Execution, StudyPlan
    from pipeline.study.job import CompareJob, compare_source
    from pipeline.study.report import markdown

    prompt_set = resolve_prompts(prompts)
    base = PRESETS[preset] if preset else {"encoders": [], "heads": ["logreg"], "finetune": [], "budgets": "32,128,1000", "seeds": 3}
    # in-domain Word2Vec of the preset; no preset and no --encoder: the default encoder, as every command
    encoders = encoders or tuple(e.replace("{source}", source) for e in base["encoders"]) or (DEFAULT_ENCODER,)
    self_train, unlabelled = pop_unlabelled(opts)
    if split_name != "test" and (finetune or base["finetune"]):
        raise click.UsageError(SPLIT_FINETUNE)
    if self_train is None and base.get("self_train") and engine == "local" and not queries:
        from pipeline.unlabelled.self_train import SelfTrainSettings

        self_train = SelfTrainSettings()
    if queries and (finetune or adapt_prior or engine != "local" or self_train):
        raise click.UsageError("--query runs frozen heads locally: drop --finetune, --adapt-prior, --self-train "
                               "and --engine ray.")
    # specs, heads and budgets fail before the data are read
    specs = EncoderOptions(tuple(encoders), long=long_text, max_length=max_length, precision=precision,
                           pooling=pooling, cache_dir=cache_dir).parsed()
    for head in heads:
        get_head(head)
    query = None
    if queries:  # simulated active learning (pipeline.study.active_compare), always beside balanced random
        from pipeline.study.active_compare import QueryPlan

        query = QueryPlan(("random", *(q for q in queries if q != "random")), k=query_batch, split_name=split_name,
                          refit=query_refit)
    plan = StudyPlan(encoders=specs, heads=heads or base["heads"], finetune=finetune or base["finetune"],
                     budgets=parse_budgets(budgets or base["budgets"]), seeds=seeds or base["seeds"],
                     adapt_prior=adapt_prior, self_train=self_train, prompts=prompt_set,
                     out_of_core=OutOfCore() if out_of_core else None, split=split_name)
    execution = Execution(out=Path(out or f"reports/{preset or 'compare'}"), cache_dir=cache_dir, jobs=jobs,
                          engine=engine, address=address)
    done = compare_source(CompareJob(source, tuple(encoders), plan, execution, query=query, test_sets=test_sets,
                                     unlabelled=unlabelled, backend=backend, quantize=quantize, min_cosine=min_cosine,
                                     source_options=opts, with_plot=not no_plot),
                          echo=lambda line: click.echo(line, err=True))
    click.echo(markdown(done.summary, title=done.title).split("\n## Time")[0])
    click.echo(f"report: {done.out / 'report.md'}  ({len(done.rows)} cells in {done.out / 'results.jsonl'})")
