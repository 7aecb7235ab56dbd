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
        except (ValueError, FileNotFoundError, ImportError, KeyError) as e:
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
