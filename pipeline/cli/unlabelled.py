"""CLI pieces for learning from unlabelled texts: the ``--unlabelled``/``--self-train`` options shared by
``fit``, ``finetune`` and ``compare``, and the ``adapt`` command (registered by :mod:`pipeline.cli.app`).

Only click and light modules at import; torch is imported inside ``adapt`` when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from pipeline.cli.options import SEED, _handle_errors, shows_training_log
from pipeline.unlabelled.choices import BALANCES, DEFAULT_METHOD, METHODS


def unlabelled_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --unlabelled, --unlabelled-text-col, --self-train, --fraction, --balance, --threshold, --soft/--hard and
    --rounds (popped by :func:`pop_unlabelled`)."""
    return _add_options(func, retarget=False)


def retarget_unlabelled_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`unlabelled_options` as ``retarget`` runs them: --unlabelled are the target site's texts, its
    pseudo-labels are 0/1 (no --soft/--hard), and --rounds says what a round is there."""
    return _add_options(func, retarget=True)


def _add_options(func: Callable[..., Any], *, retarget: bool) -> Callable[..., Any]:
    """The options of :func:`unlabelled_options`, or of :func:`retarget_unlabelled_options` (``retarget``)."""
    options = [
        click.option("--unlabelled", "unlabelled", multiple=True, metavar="SOURCE",
                     help="Unlabelled texts of the target site (repeatable; any SOURCE format, read with --text-col; "
                          "labels in it are not read): the site's positive rate is read from the bundle's ranking "
                          "of them where it may be, and with labels the new head also learns from its surest "
                          "guesses on them." if retarget else
                          "Unlabelled texts to learn from (repeatable; any SOURCE format, read with --text-col; "
                          "labels in it are not read), e.g. reviews of the site the model is for. They replace "
                          "the default, the pool texts outside the label budget. Test-split texts are used only "
                          "if you pass them here (transductive; reported)."),
        click.option("--unlabelled-text-col", "unlabelled_text_col", default=None, metavar="COL",
                     help="Column of the --unlabelled sources holding the text, where it is not --text-col's (the "
                          "labels file `label` writes has 'text', a site's export 'tweet', say).  [default: "
                          "--text-col]"),
        click.option("--self-train", "self_train", is_flag=True,
                     help="Self-training: the model trained on the labels (teacher) labels the unlabelled texts; "
                          "a student learns from the labels plus its most confident pseudo-labels."),
        click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
                     help="--self-train: share of the unlabelled texts given pseudo-labels, the ones the teacher is "
                          "surest of, per class in the shares the teacher predicts (fine-tuned students take at "
                          "most about the teacher's passes, "
                          "drawn from these)."),
        click.option("--balance", type=click.Choice(BALANCES), default=BALANCES[0], show_default=True,
                     help="--self-train: pseudo-labels per class: in the shares the teacher predicts (no 50/50 "
                          "prior imposed on a site whose positive rate is not a half), or equal halves."),
        click.option("--threshold", type=click.FloatRange(0.5, 1, max_open=True), default=None,
                     help="--self-train: also keep only pseudo-labels whose class probability is at least this.  "
                          "[default: no floor]"),
        click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Self-training passes: in each, the head fitted so far labels the unlabelled texts again "
                          "and the new head is refitted on the labels plus its surest guesses." if retarget else
                          "--self-train: teacher -> student passes (each student labels for the next)."),
    ]
    if not retarget:  # retarget's pseudo-labels are 0/1
        options.insert(-1, click.option(
            "--soft/--hard", "soft", default=True, show_default=True,
            help="--self-train on finetune: the student aims at the teacher's probabilities (soft) or at its 0/1 "
                 "labels (hard); frozen heads always learn 0/1 labels."))
    for option in reversed(options):
        func = option(func)
    return func


def pop_unlabelled(opts: dict[str, Any]) -> tuple[Any, dict[str, list[str]]]:
    """Remove the options of :func:`unlabelled_options` from ``opts``; return the self-training settings
    (``None`` without --self-train) and the texts of each --unlabelled source."""
    from pipeline.unlabelled.self_train import SelfTrainSettings
    from pipeline.data.readers import DataError, MissingColumnError
    from pipeline.data.unlabelled import read_unlabelled

    sources, on, text_col = opts.pop("unlabelled"), opts.pop("self_train"), opts.pop("unlabelled_text_col")
    chosen = {k: opts.pop(k) for k in ("fraction", "balance", "threshold", "soft", "rounds") if k in opts}
    settings = SelfTrainSettings(**chosen) if on else None
    try:
        return settings, read_unlabelled(sources, text_col=text_col or opts.get("text_col", "text"),
                                         text_option="--unlabelled-text-col")
    except MissingColumnError as e:
        if text_col:
            raise
        raise DataError(f"{e} (--text-col names the labelled texts' column, and the --unlabelled one's only where "
                        "it has the same name.)") from None


@click.command("adapt", short_help="Continue pretraining an encoder on unlabelled texts.")
@click.argument("source")
@click.option("--encoder", default="minilm", show_default=True, help="Encoder to adapt: minilm, mpnet, st:DIR, hf:DIR.")
@click.option("--method", type=click.Choice(METHODS), default=DEFAULT_METHOD, show_default=True,
              help="simcse: two dropout views of a text are each other's positive (chosen on a validation split); "
                   "tsdae: rebuild each text from the embedding of a copy with 60% of its words deleted; "
                   "mlm: predict 15% masked word pieces.")
@click.option("--unlabelled", "unlabelled", multiple=True, metavar="SOURCE",
              help="More unlabelled texts (repeatable; any SOURCE format, read with --text-col; labels not read).")
@click.option("--text-col", default="text", show_default=True, help="Column holding the review text.")
@click.option("--group-col", default=None, help="Column grouping rows (e.g. movie), for the same pool/test split as fit.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Also copy the adapted model here (use it as --encoder st:OUT).  [default: only the cache]")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True, help="Passes over the texts.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-5, show_default=True, help="Learning rate.")
@click.option("--batch-size", type=click.IntRange(min=2), default=16, show_default=True, help="Texts per batch.")
@click.option("--max-length", type=click.IntRange(min=8), default=64, show_default=True, help="Word pieces kept per text.")
@click.option("--max-texts", type=click.IntRange(min=2), default=None,
              help="Train on a seeded sample of at most N texts, bounding the time.  [default: all]")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the sample, data order, noise and dropout.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where to train.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True,
              help="auto: fp16 AMP on CUDA; bf16 autocast on CPUs with native bf16; else fp32.")
@click.option("--checkpoint-every", type=click.FloatRange(min=0), default=300, show_default=True,
              help="Seconds between checkpoints within an epoch (one is also written after every epoch).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Embedding cache (default: $REVIEW_TRANSFER_CACHE or ./cache); the adapted model goes to "
                   "CACHE/adapted/FINGERPRINT.")
@_handle_errors
@shows_training_log
def adapt(source: str, encoder: str, method: str, unlabelled: tuple[str, ...], text_col: str, group_col: str | None,
          out: str | None, max_texts: int | None, seed: int, device: str, precision: str, checkpoint_every: float,
          cache_dir: str | None, **recipe: Any) -> None:
    """Domain-adaptive pretraining: continue training ENCODER on unlabelled texts alone.

    The texts are SOURCE's pool (never its test split; labels, if any, are not read) plus every
    --unlabelled SOURCE. The model is keyed by a fingerprint of the base model, the recipe and the
    corpus: a second run with the same inputs is a cache hit, and a killed run resumes from its
    checkpoint when rerun. Nothing is downloaded: the TSDAE decoder and the MLM head are built from
    the encoder's own weights.

    \b
    Examples:
      review-transfer adapt rt --encoder minilm --out models/minilm-rt
      review-transfer fit rt --encoder st:models/minilm-rt --budget 1000
      review-transfer finetune rt --encoder st:models/minilm-rt --budget 128 --out models/ft
    """
    from pipeline.unlabelled.adapt import AdaptRecipe
    from pipeline.unlabelled.adapt_job import AdaptJob, adapt_source

    job = AdaptJob(source, encoder, AdaptRecipe(method=method, seed=seed, **recipe), unlabelled=unlabelled,
                   text_col=text_col, group_col=group_col, out=out, max_texts=max_texts, device=device,
                   precision=precision, checkpoint_seconds=checkpoint_every, cache_dir=cache_dir)
    result, path, n_texts = adapt_source(job, echo=lambda line: click.echo(line, err=True))
    how = "cache hit" if result.cached else f"trained in {result.record['seconds']:.0f} s"
    click.echo(f"adapted {encoder} by {method} on {n_texts:,} texts ({how}): fingerprint {result.fingerprint}")
    click.echo(f"use it as --encoder st:{path}")
