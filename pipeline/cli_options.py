"""Options and helpers shared by the command modules (:mod:`pipeline.cli`, :mod:`pipeline.active_cli`):
how to read a SOURCE, the cache directory, seeds, and the one-line display of this package's errors.
Only click and the standard library at module level."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from pipeline import ReviewTransferError


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
    """Show this package's errors (bad data, bad bundle, bad spec, a failed Ray run) as one clean line.

    Only :class:`ReviewTransferError` and its subclasses: any other exception is a bug, and its traceback
    is what a bug report needs.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ReviewTransferError as e:
            raise click.ClickException(str(e)) from None

    return wrapper


SEED = click.IntRange(0, 2**32 - 1)  # what numpy's and torch's generators accept


_cache_dir_option = click.option(
    "--cache-dir", default=None, type=click.Path(file_okay=False),
    help="Embedding cache (default: $REVIEW_TRANSFER_CACHE or ./cache).",
)


def prompts_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --prompts: the linear heads' prompt prior (:mod:`pipeline.prompts`)."""
    return click.option(
        "--prompts", default="default", show_default=True, metavar="default|none|FILE",
        help="Sentiment prompts ('I loved it.', 'I hated it.', ...) that pull the linear heads (logreg, linear-svm, "
             "ridge) toward the encoder's own sense of positive and negative, most on few labels. 'none' fits on "
             "the labels alone; FILE holds one prompt per line, '+ text' or '- text' (e.g. '+ The battery lasts "
             "all day.').")(func)
