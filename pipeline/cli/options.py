"""Options and helpers shared by the command modules (:mod:`pipeline.cli.app`, :mod:`pipeline.cli.active`):
how to read a SOURCE, the cache directory, seeds, and the one-line display of this package's errors.
Only click and the standard library at module level."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pipeline import ReviewTransferError


def source_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options that say how to read a SOURCE (columns, positive label)."""
    options = [
        click.option("--text-col", default="text", show_default=True, help="Column holding the review text."),
        click.option("--label-col", default="label", show_default=True, help="Column holding the label."),
        click.option("--group-col", default=None, help="Column grouping rows (e.g. movie) for a leak-free split."),
        click.option("--positive", default=None, help="Label value(s) meaning positive, when labels are not a known pair "
                     "(e.g. 5, or 4,5 for stars); every other value is negative unless --negative is given."),
        click.option("--negative", default=None, help="Label value(s) meaning negative (e.g. 1,2); rows labelled neither "
                     "--positive nor --negative (a 3, a 'neutral') are left out and counted."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def load_source(source: str, *, require_labels: bool = True, **opts: Any):
    """Load SOURCE with the ``source_options`` values, turning data errors into click errors."""
    from pipeline.data.dataset import DataError, load

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
        except OSError as e:  # a write no writer of the package explains: where, how much is free, what to do
            from pipeline.disk import UNWRITABLE, disk_full_error, is_disk_full, stdout_full_error
            from pipeline.paths import ENV_VAR, default_cache_dir

            if e.errno in UNWRITABLE and e.filename:  # a place it may not write
                raise click.ClickException(f"{e.filename}: {e.strerror}: check its permissions, or give the command a "
                                           f"place it can write (--out, --output, --cache-dir or {ENV_VAR}); what "
                                           "was written before is intact.") from None
            if not is_disk_full(e):
                raise
            if (output_full := stdout_full_error(e)) is not None:
                raise click.ClickException(str(output_full)) from None
            where = Path(e.filename).parent if e.filename else default_cache_dir()
            fix = f"free some space there, or write to a disk with room (the cache: {ENV_VAR}=DIR or --cache-dir DIR)"
            raise click.ClickException(str(disk_full_error(where, e.filename or "a file", fix, cleaned=False))) from None

    return wrapper


def shows_training_log(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print the training's progress lines (``pipeline.finetune`` at INFO: epochs, checkpoints, resuming) on stderr
    while the command runs, and leave that logger as it found it: the Python API and later commands in the same
    process keep their own logging."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import logging

        log = logging.getLogger("pipeline.finetune")
        handler, level = logging.StreamHandler(), log.level
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        try:
            return func(*args, **kwargs)
        finally:
            log.removeHandler(handler)
            log.setLevel(level)

    return wrapper


SEED = click.IntRange(0, 2**32 - 1)  # what numpy's and torch's generators accept


_cache_dir_option = click.option(
    "--cache-dir", default=None, type=click.Path(file_okay=False),
    help="Embedding cache (default: $REVIEW_TRANSFER_CACHE or ./cache).",
)


def prompts_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --prompts: the linear heads' prompt prior (:mod:`pipeline.heads.prompts`)."""
    return click.option(
        "--prompts", default="default", show_default=True, metavar="default|none|FILE",
        help="Sentiment prompts ('I loved it.', 'I hated it.', ...) that pull the linear heads (logreg, linear-svm, "
             "ridge) toward the encoder's own sense of positive and negative, most on few labels. 'none' fits on "
             "the labels alone; FILE holds one prompt per line, '+ text' or '- text' (e.g. '+ The battery lasts "
             "all day.').")(func)


def labelling_options(labels_help: str, head_help: str, *, labels_required: bool) -> Callable[..., Any]:
    """Add what ``suggest`` and ``label`` share: SOURCE and how to read it, --labels, --encoder, --strategy,
    --head and --take-labels, with each command's own help for --labels and --head."""
    from pipeline.active.choices import DEFAULT_STRATEGY, STRATEGIES
    from pipeline.encoders.spec import DEFAULT_ENCODER

    options = [
        click.argument("source"),
        source_options,
        click.option("--labels", "labels_file", required=labels_required, default=None,
                     type=click.Path(dir_okay=False), help=labels_help),
        click.option("--encoder", default=DEFAULT_ENCODER, show_default=True,
                     help="Encoder spec whose vectors the strategy works on; transformers run under backend auto "
                          "(see embed --backend), e.g. mpnet[backend=torch] for torch."),
        click.option("--strategy", type=click.Choice(list(STRATEGIES)), default=DEFAULT_STRATEGY, show_default=True,
                     help="; ".join(f"{name}: {what}" for name, what in STRATEGIES.items())),
        click.option("--head", default="logreg", show_default=True, help=head_help),
        click.option("--take-labels", is_flag=True,
                     help="Start from the labels SOURCE's label column already holds (--label-col; a partly filled "
                          "column is fine): they count as labels so far and are never proposed; `label` also writes "
                          "them into --labels, so `fit FILE` trains on them. SOURCE is never written, and a text "
                          "--labels labels already keeps its label there. Without it they are proposed again."),
    ]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


# ---------------------------------------------------------------------------------------------- encoders
LONG_TEXT_CHOICES = ("auto", "truncate", "head-tail", "chunk-mean")  # long_text.STRATEGIES, without importing numpy


def _long_text_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--long`` and ``--max-length``: how a transformer bundle reads long texts, for this run only."""
    options = [
        click.option("--long", "long_text", type=click.Choice(LONG_TEXT_CHOICES),
                     default=None, help="Transformer bundles, texts over the window: as `embed --long`.  "
                     "[default: as the bundle records it: auto (chunk-mean) for fine-tuned bundles]"),
        click.option("--max-length", type=click.IntRange(min=2), default=None,
                     help="Transformer bundles: window in word pieces, e.g. 128 for a model fine-tuned at 64 "
                     "(texts between the two lengths are then seen whole).  [default: as the bundle records it]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _encoder_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --precision, --max-length, --pooling and --long: values for the options an encoder spec leaves
    unset (``minilm[long=truncate]`` sets its own)."""
    options = [
        click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default=None,
                     help="Transformers: auto (fp16 on CUDA; bf16 on CPUs with fast bf16 when it keeps cosine "
                          ">= 0.999; else fp32), fp32, fp16, bf16. Spec key: precision.  [default: auto]"),
        click.option("--max-length", type=click.IntRange(min=2), default=None,
                     help="Transformers: tokens per model input. Spec key: max_length.  [default: the model's]"),
        click.option("--pooling", type=click.Choice(["mean", "tfidf", "sif", "cls"]), default=None,
                     help="Word vectors: tfidf (default, idf-weighted mean), mean, sif. hf: models: mean "
                          "(default), cls. Spec key: pooling."),
        click.option("--long", "long_text", type=click.Choice(["auto", "truncate", "head-tail", "chunk-mean"]),
                     default=None, help="Transformers, texts over the max length: truncate; head-tail (first 1/4 "
                     "+ last 3/4); chunk-mean (overlapping windows averaged); auto = chunk-mean, with a notice "
                     "when texts are long. Spec key: long.  [default: auto]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


ENCODER_HELP = ("Encoder spec, with options in brackets: glove-6b-50d, w2v:PATH, glove:PATH, w2v-train:SOURCE, "
                "wordllama, minilm, mpnet, multilingual-e5 (e5-small-multilingual, ~100 languages), multilingual "
                "(the default: English texts through mpnet[layers=9-12], others through multilingual-e5), "
                "st:NAME_OR_PATH, hf:NAME_OR_PATH; A+B puts both side by side; E|O reads English texts with E and "
                "other languages with O, a head each; e.g. minilm[long=truncate,max_length=128], "
                "glove-6b-50d[pooling=sif]+minilm, mpnet[layers=9-12] (the mean of layers 9-12; English only), "
                "mpnet[layers=9-12]+multilingual-e5|multilingual-e5.")


# ---------------------------------------------------------------------------------------------- stage two
HEADS_HELP = ("scikit-learn head (repeatable): logreg, linear-svm, rbf-svm, knn, random-forest, hist-gb, mlp, ridge, "
              "nb, sgd.")  # pipeline.heads.registry.HEADS, without importing scikit-learn


def _budget(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from pipeline.data.dataset import parse_budget

    try:
        return None if value is None else parse_budget(value)
    except ReviewTransferError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def _output(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check --out (--output) before any work: a .csv or .jsonl file in an existing folder."""
    if value is not None:
        from pipeline.predict.predict import check_output

        try:
            check_output(value)
        except ReviewTransferError as e:
            raise click.BadParameter(str(e).removeprefix(f"--out {value}: "), ctx, param) from None
    return value


def _prior(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is None:
        return None
    from pipeline.predict.prior import check_prior

    try:
        return check_prior(value, "the positive rate")
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def _prior_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --prior and --adapt-prior (class-prior adaptation of the bundle's probabilities)."""
    func = click.option("--adapt-prior", is_flag=True,
                        help="Estimate the positive rate of these texts (EM and BBSE, with bootstrap intervals) "
                             "and re-weight the probabilities to it only when the texts look like the training "
                             "texts and the estimates agree and exclude the training rate; otherwise keep them "
                             "and say why. Needs a few hundred texts.")(func)
    return click.option("--prior", type=float, default=None, callback=_prior,
                        help="Known positive rate of these texts, strictly between 0 and 1: re-weight the "
                             "probabilities from the training rate to it.")(func)


TRUST_ENCODER_HELP = ("Resolve the bundle's encoder spec as if you typed it: its local paths, hub names, pickled .kv "
                      "files, retraining w2v-train from SOURCE. Only for bundles you made.")
ENCODER_PATH_HELP = ("The model directory or word2vec/GloVe text file to use for a bundle whose encoder was a path "
                     "outside it (st:, hf:, w2v:, glove:); its sha256 must match the one the bundle records, checked "
                     "before loading. Never a pickle (.kv).")


def _trust_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --encoder-path, --trust-encoder and --allow-legacy: what a bundle's encoder may resolve to beyond
    packaged models and the bundle's own encoder/ directory, and whether an unsealed format-1 bundle loads."""
    func = click.option("--trust-encoder", is_flag=True, help=TRUST_ENCODER_HELP)(func)
    func = click.option("--allow-legacy", is_flag=True,
                        help="Load a format-1 bundle (review-transfer 0.3), whose manifest has no digest: edits to "
                             "it go unnoticed. Only for bundles that never left your hands.")(func)
    return click.option("--encoder-path", default=None, type=click.Path(exists=True), help=ENCODER_PATH_HELP)(func)


# ---------------------------------------------------------------------------------------------- stage one
def _engine_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --engine and --address (where the work runs)."""
    func = click.option("--address", default=None,
                        help="--engine ray: cluster to join, e.g. auto (a node of a running cluster) or "
                             "ray://HEAD:10001.  [default: $RAY_ADDRESS, else a new local Ray instance]")(func)
    return click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                        help="local: this process; ray: a Ray cluster (pip install 'review-transfer[ray]'; "
                             "--cache-dir must be on a filesystem every node shares).")(func)


def _query_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add compare's --query, --query-batch, --query-refit and --split (simulated active learning; see
    pipeline.study.active_compare)."""
    from pipeline.active.choices import DEFAULT_REFIT, REFITS, STRATEGIES

    func = click.option("--split", "split_name", type=click.Choice(["test", "validation"]), default="test",
                        show_default=True,
                        help="Score on the test split, or on a validation split carved out of the pool (whole "
                             "groups, about one in five; labels and --query strategies draw from the rest, and the "
                             "test split is never read), to choose encoders, heads and settings.")(func)
    func = click.option("--query-refit", type=click.Choice(list(REFITS)), default=DEFAULT_REFIT, show_default=True,
                        help="--query: how each sample's head is fitted, random's included: "
                             + "; ".join(f"{k}: {v}" for k, v in REFITS.items()) + ".")(func)
    func = click.option("--query-batch", type=click.IntRange(min=1), default=8, show_default=True,
                        help="--query: texts queried per round.")(func)
    return click.option("--query", "queries", multiple=True, type=click.Choice(list(STRATEGIES)),
                        help="Simulate active learning with this strategy (repeatable), beside 'random' (today's "
                             "balanced budgets): each builds its own sample from the seed's cold start, the pool's "
                             "labels hidden until queried. Frozen heads only.")(func)


def _backend_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --backend, --quantize and --min-cosine (transformer encoders run from an ONNX/OpenVINO export)."""
    func = click.option("--min-cosine", type=click.FloatRange(-1, 1), default=0.99, show_default=True,
                        help="Accuracy guard: refuse an onnx/openvino/int8 encoder whose median cosine to torch "
                             "fp32 on a sample of your texts is lower.")(func)
    func = click.option("--quantize", type=click.Choice(["none", "int8", "int8-static"]), default=None,
                        help="int8: quantized weights (backend onnx: dynamic int8; openvino: int8 weights); "
                             "int8-static: openvino with int8 weights and activations (calibrated once); none: "
                             "fp32.  [default: as backend auto chooses]")(func)
    return click.option("--backend", type=click.Choice(["torch", "onnx", "openvino", "auto"]), default=None,
                        help="Transformers: torch (the exact torch vectors); onnx (onnxruntime) or openvino, exported "
                             "once into the cache; auto: the fastest export that keeps --min-cosine on your texts "
                             "(openvino int8 where its accuracy was measured, else fp32), else torch.  [default: auto]")(func)


def end_without_teardown(root: click.Command) -> None:
    """When this process is the command line ``root`` itself (the ``review-transfer`` script or ``python -m
    pipeline``, whose main module imports it as ``main``; not a test's runner), end it as soon as it would exit, with
    stdout and stderr flushed and background loads finished (the interpreter waits for them first), skipping the
    teardown of what the command loaded: OpenVINO frees a compiled model in about 0.04 s of a cold ``predict``. For
    a command whose results are all written or printed."""
    import sys

    if getattr(sys.modules.get("__main__"), "main", None) is root:
        import atexit

        atexit.register(_exit_now)


def _exit_now() -> None:
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
