"""The ``suggest`` and ``label`` commands: choose what to label next (registered in :mod:`pipeline.cli.app`)."""

from __future__ import annotations

from typing import Any

import click

from pipeline import MissingExtraError
from pipeline.cli.options import SEED, _cache_dir_option, _handle_errors, labelling_options


@click.command(short_help="Write the K texts most worth labelling next, as a CSV.")
@labelling_options("Labels so far: any SOURCE with text and label columns (e.g. the FILE `label` writes, or a "
                   "filled-in to_label.csv). Missing or not given: no labels yet (a diverse cold start).",
                   "Model whose guesses and certainty the strategy uses (default parameters).", labels_required=False)
@click.option("--k", type=click.IntRange(min=1), default=50, show_default=True, help="How many texts to suggest.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the random and k-means++ draws.")
@click.option("--out", default="to_label.csv", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the suggestions (.csv, UTF-8 with the byte-order mark Excel needs; or .jsonl).")
@click.option("--keep-col", "keep_cols", multiple=True,
              help="A column of SOURCE (an id) to carry into each suggested row, before the text (a text on several "
                   "rows: its first row's); repeat for more.")
@_cache_dir_option
@_handle_errors
def suggest(source: str, labels_file: str | None, encoder: str, k: int, strategy: str, head: str, take_labels: bool,
            seed: int, out: str, keep_cols: tuple[str, ...], cache_dir: str | None, **opts: Any) -> None:
    """Write the K texts of SOURCE most worth labelling next, for labelling in a spreadsheet.

    A .csv is written as Excel reads UTF-8 (with a byte-order mark), so accented and non-Latin texts
    survive a round trip through it; every command reads it back as it is.

    Each row has the text, an empty label column to fill in, the current model's guess and
    P(positive) (a head fitted on the labels so far) and the reason it was chosen. Texts already in
    --labels are never suggested. Fill in the label column, append the rows to the labels file and
    run again; the labels file is a normal SOURCE for `fit` and `compare`.

    \b
    Examples:
      review-transfer suggest reviews.csv --text-col review --k 50 --out to_label.csv
      review-transfer suggest reviews.csv --text-col review --labels labels.csv --strategy margin
      review-transfer suggest tweets.csv --text-col tweet --keep-col tweet_id --out to_label.csv
    """
    from pipeline.active.labelling import Suggestion, suggest as suggest_texts
    from pipeline.predict.predict import write_rows

    rows, ws = suggest_texts(Suggestion(source, encoder, strategy, k, labels_file=labels_file, head=head, seed=seed,
                                        cache_dir=cache_dir, source_options=opts, take_labels=take_labels,
                                        keep_cols=keep_cols),
                             echo=lambda line: click.echo(line, err=True))
    if not rows:
        raise click.ClickException(f"{source}: every text is already labelled; nothing to suggest.")
    write_rows(rows, out, bom=True)
    counts = ", ".join(f"{n} {name}" for name, n in ws.counts().items())
    click.echo(f"wrote {len(rows)} texts to label to {out} (strategy {strategy}; labels so far: {counts}; "
               f"{ws.n_source - len([r for r in ws.labels if r < ws.n_source]):,} of {ws.n_source:,} texts unlabelled)")


@click.command(short_help="Label texts in a local web page, the most useful first.")
@labelling_options("JSON-lines file each label is appended to at once (created if missing; a restart resumes "
                   "from it). A normal SOURCE for `fit` and `compare`. Skips go to FILE.skipped.",
                   "Model refitted after every label (default parameters).", labels_required=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (other than loopback, anyone "
              "who can reach it and has the token can label).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port; 0 = any free port.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the random and k-means draws.")
@_cache_dir_option
@_handle_errors
def label(source: str, labels_file: str, encoder: str, strategy: str, head: str, take_labels: bool, host: str,
          port: int, seed: int, cache_dir: str | None, **opts: Any) -> None:
    """Label the texts of SOURCE in a local web page, one at a time, the most useful first.

    Prints a URL with a random token (requests without it are refused). The page shows one review
    chosen by --strategy with Positive / Negative / Skip (keys P, N, S; arrows) and Undo (U,
    Backspace), the counts per class and the cross-validated accuracy of the model so far, with
    its 95% interval, as a learning curve that grows with each label. Each label is appended to
    --labels and fsynced before the page moves on, so killing the server loses nothing; run the
    same command again to resume. Several tabs may label at once: none is shown a text open in another.

    \b
    Examples:
      review-transfer label reviews.csv --text-col review --labels labels.jsonl
      review-transfer label shop.csv --text-col review --label-col stars --positive 4,5 --negative 1,2 --take-labels --labels labels.jsonl
      review-transfer fit labels.jsonl --encoder minilm          # then train on what you labelled
    """
    try:
        from pipeline.active.label_app.app import serve
    except ImportError as e:
        raise MissingExtraError(f"label needs FastAPI and uvicorn ({e}): pip install 'review-transfer[label]'") from None
    from pipeline.active.label_app.session import LabelJob, open_session

    if not labels_file.endswith(".jsonl"):
        raise click.BadParameter(f"{labels_file}: label writes JSON lines; name the file *.jsonl.", param_hint="--labels")
    session = open_session(LabelJob(source, labels_file, encoder, strategy, head=head, seed=seed, cache_dir=cache_dir,
                                    source_options=opts, take_labels=take_labels),
                           echo=lambda line: click.echo(line, err=True))
    counts = ", ".join(f"{n} {name}" for name, n in session.counts().items())
    click.echo(f"{source}: {session.n_source:,} texts; labels so far in {labels_file}: {counts}; strategy {strategy}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}: anyone who can reach it and has the token can label", err=True)
    serve(session, host, port, echo=click.echo)
