"""The ``review-transfer`` command line: thin click commands that parse options and call the package.

Only click, the standard library and light project modules are imported here; torch,
transformers and sentence-transformers are imported inside the commands that need them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from pipeline import __version__


def source_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options that say how to read a SOURCE (columns, positive label)."""
    options = [
        click.option("--text-col", default="text", show_default=True, help="Column holding the review text."),
        click.option("--label-col", default="label", show_default=True, help="Column holding the label."),
        click.option("--group-col", default=None, help="Column grouping rows (e.g. movie) for a leak-free split."),
        click.option("--positive", default=None, help="Label value meaning positive, when labels are not a known pair."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def load_source(source: str, *, require_labels: bool = True, **opts: Any):
    """Load SOURCE with the ``source_options`` values, turning data errors into click errors."""
    from pipeline.data import DataError, load

    try:
        return load(source, require_labels=require_labels, **opts)
    except DataError as e:
        raise click.ClickException(str(e)) from None


def _handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Show project errors (bad data, bad bundle, bad spec) as one clean line, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ValueError, FileNotFoundError, ImportError) as e:
            raise click.ClickException(str(e)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="review-transfer")
def main() -> None:
    """Classify reviews as positive or negative from a few hundred labels, by transfer learning.

    \b
    Stage one   embed     encode texts once into an HDF5 cache (GloVe, Word2Vec, MiniLM, BERT...)
    Stage two   fit       train scikit-learn heads on cached vectors, save model bundles
                predict   label new texts with a bundle;  evaluate: score a bundle on labelled data
    Optional    finetune  back-propagate through a language model with a new task head
    Study       compare   learning curves over label budgets x seeds x encoders x heads

    SOURCE is a .csv/.tsv/.jsonl/.json/.parquet file, 'rt' (Rotten Tomatoes critic snippets,
    downloaded on first use) or 'hf:NAME[:SPLIT]' (Hugging Face datasets).
    Start with:  review-transfer data show rt
    """


# ---------------------------------------------------------------------------------------------- data
@main.group()
def data() -> None:
    """Inspect a data source."""


@data.command("show")
@click.argument("source")
@source_options
@click.option("--rows", "n_rows", default=5, show_default=True, help="How many example rows to print.")
def data_show(source: str, n_rows: int, **opts: Any) -> None:
    """Print rows, class balance, text lengths, what was dropped, groups and split sizes of SOURCE."""
    from pipeline.data import split
    from pipeline.data_summary import format_summary

    ds = load_source(source, require_labels=False, **opts)
    pool, test = split(ds)
    click.echo(format_summary(ds, pool, test, n_rows))


# ---------------------------------------------------------------------------------------------- compare
@main.command()
@click.argument("source")
@source_options
@click.option("--preset", type=click.Choice(["quick", "full"]), default=None,
              help="quick: GloVe and MiniLM + logreg at 32/128/1000 labels, 3 seeds (~5 min on 2 cores). "
                   "full: static vs transformer features vs fine-tuning over all budgets, 5 seeds (hours). "
                   "Options given explicitly override the preset.")
@click.option("--encoder", "encoders", multiple=True, help="Encoder spec (repeatable), e.g. glove-6b-50d, minilm.")
@click.option("--head", "heads", multiple=True, help="scikit-learn head (repeatable), e.g. logreg, rbf-svm.")
@click.option("--finetune", "finetune", multiple=True, type=click.Choice(["head", "setfit"]),
              help="Also fine-tune each encoder end to end with this method (repeatable).")
@click.option("--budgets", default=None, help="Label budgets, comma-separated; 'all' = the whole pool.  [default: 32,128,1000]")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="Seeds per budget (0..N-1).  [default: 3]")
@click.option("--test-set", "test_sets", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Extra labelled file to score every cell on (out-of-domain transfer); same column options.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Report directory; rerunning with the same --out resumes.  [default: reports/<preset or compare>]")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=-1), help="Parallel fits (joblib; -1 = all cores).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="Embedding cache (default: $REVIEW_TRANSFER_CACHE or ./cache).")
@click.option("--no-plot", is_flag=True, help="Skip the PNG plot (no matplotlib needed).")
@_handle_errors
def compare(source: str, preset: str | None, encoders: tuple[str, ...], heads: tuple[str, ...],
            finetune: tuple[str, ...], budgets: str | None, seeds: int | None, test_sets: tuple[str, ...],
            out: str | None, jobs: int, cache_dir: str | None, no_plot: bool, **opts: Any) -> None:
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
    """
    from pathlib import Path

    from pipeline.compare import PRESETS, parse_budgets, run_compare
    from pipeline.report import markdown, write_report

    base = PRESETS[preset] if preset else {"encoders": [], "heads": ["logreg"], "finetune": [], "budgets": "32,128,1000", "seeds": 3}
    encoders = encoders or tuple(base["encoders"])
    if not encoders:
        raise click.UsageError("give at least one --encoder (e.g. --encoder minilm) or a --preset.")
    ds = load_source(source, **opts)
    extra = {Path(p).stem: load_source(p, **opts) for p in test_sets}
    out_dir = Path(out or f"reports/{preset or 'compare'}")
    rows = run_compare(
        ds, encoders=encoders, heads=heads or base["heads"], finetune=finetune or base["finetune"],
        budgets=parse_budgets(budgets or base["budgets"]), seeds=seeds or base["seeds"], test_sets=extra,
        out=out_dir, cache_dir=cache_dir, jobs=jobs,
    )
    summary = write_report(rows, out_dir, title=f"compare on {source}", with_plot=not no_plot)
    click.echo(markdown(summary, title=f"compare on {source}").split("\n## Time")[0])
    click.echo(f"report: {out_dir / 'report.md'}  ({len(rows)} cells in {out_dir / 'results.jsonl'})")
