"""``data show``: look at a data source before using it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.cli.options import _handle_errors, load_source, source_options


# ---------------------------------------------------------------------------------------------- data
@click.group(short_help="Inspect a data source: data show SOURCE.")
def data() -> None:
    """Inspect a data source (see `data show --help`)."""


@data.command("show")
@click.argument("source")
@source_options
@click.option("--rows", "n_rows", default=5, show_default=True, help="How many example rows to print.")
@click.option("--encoder", "encoders", multiple=True,
              help="Also count texts longer than this transformer's max length (repeatable), e.g. minilm; loads the model.")
@_handle_errors
def data_show(source: str, n_rows: int, encoders: tuple[str, ...], **opts: Any) -> None:
    """Print rows, class balance, text lengths, what was dropped, groups and split sizes of SOURCE.

    Every command reads SOURCE through the same reader, so a file this accepts, they accept: check a new file
    here first (its columns, its labels, what is dropped) before any model is loaded.

    \b
    Examples:
      review-transfer data show rt
      review-transfer data show shop.csv --text-col "Review Text" --label-col Recommended --positive yes
      review-transfer data show long_reviews.jsonl --text-col body --encoder minilm   (also: texts past its window)
    """
    from pipeline.data.dataset import split
    from pipeline.data.summary import format_summary
    from pipeline.encoders.spec import EncoderOptions

    specs = EncoderOptions(encoders).singles()  # a typo fails before the data are read
    named = opts["label_col"] != "label" or opts["positive"] is not None  # a label column asked for must be there
    ds = load_source(source, require_labels=named, **opts)
    pool, test = split(ds)
    click.echo(format_summary(ds, pool, test, n_rows))
    if ds.labels is None and not named and (note := _no_label_column(source, opts["label_col"], opts["text_col"])):
        click.echo(note)
    if specs:
        from pipeline.encoders import get_encoder

        for spec in specs:
            enc = get_encoder(spec)
            stats = enc.length_stats(ds.texts) if hasattr(enc, "length_stats") else None
            click.echo(f"{spec}: " + (stats.line() if stats else "a word-vector encoder: sees every text whole"))


def _no_label_column(source: str, label_col: str, text_col: str) -> str:
    """Why a file read as unlabelled, where it has no column ``label_col``: its other columns, to name with
    --label-col (a star rating, say); empty where the column is there and simply holds no label yet, or where
    SOURCE is not a file (``hf:``)."""
    from pipeline.data.readers import column_names

    if not Path(source).is_file() or label_col in (names := column_names(source)):
        return ""
    others = ", ".join(repr(n) for n in names if n != text_col)
    return (f"note: no column {label_col!r}, so every row reads as unlabelled; if the labels are in another column, "
            f"name it with --label-col (columns: {others}).")
