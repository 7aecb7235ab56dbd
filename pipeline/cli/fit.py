"""Stage two on the command line: ``fit`` heads into bundles, ``predict`` and ``evaluate`` with a bundle."""

from __future__ import annotations

from typing import Any

import click

from pipeline.cli.options import (
    ENCODER_HELP, HEADS_HELP, SEED, _backend_options, _budget, _cache_dir_option, _encoder_flags, _handle_errors, end_without_teardown, _long_text_options, _output, _prior_options, _trust_options, prompts_option, source_options,
)
from pipeline.cli.unlabelled import pop_unlabelled, unlabelled_options
from pipeline.encoders.spec import DEFAULT_ENCODER


@click.command(short_help="Train heads on cached vectors of SOURCE; save model bundles.")
@click.argument("source")
@source_options
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True,
              help=ENCODER_HELP + " The default is the most accurate and reads ~100 languages from English "
              "labels; minilm is about 6x faster.")
@_encoder_flags
@click.option("--head", "heads", multiple=True, help=HEADS_HELP + "  [default: logreg]")
@click.option("--budget", default=None, callback=_budget, help="Train on a balanced sample of N labels of the pool.  [default: all]")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the budget sample, CV folds and heads.")
@click.option("--class-weight", type=click.Choice(["balanced"]), default=None, help="Weight classes inversely to their frequency.")
@click.option("--out", default="models", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the bundles, one per head: OUT/<source>-<encoder>-<head>-b<budget>-s<seed>/.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=-1), help="CV folds of the grid search fitted in parallel processes (-1 = all cores).")
@click.option("--out-of-core", is_flag=True, help="--head sgd: stream the pool's cached vectors in chunks instead of "
              "holding them (any number of rows; no grid search). Chosen by itself above --memory-budget.")
@click.option("--memory-budget", default="2G", show_default=True,
              help="Vectors (pool + test, float32) fit may hold in memory; above it --head sgd trains out of core.")
@prompts_option
@_backend_options
@unlabelled_options
@_cache_dir_option
@_handle_errors
def fit(source: str, encoder: str, heads: tuple[str, ...], budget: int | None, seed: int, class_weight: str | None,
        out: str, jobs: int, out_of_core: bool, memory_budget: str, prompts: str, backend: str | None,
        quantize: str | None, min_cosine: float, cache_dir: str | None, precision: str | None, max_length: int | None,
        pooling: str | None, long_text: str | None, **opts: Any) -> None:
    """Train scikit-learn heads on cached vectors of SOURCE and save one model bundle per head.

    Splits SOURCE leak-free into pool and test, trains on the pool (or a --budget of it), picks
    each head's hyperparameters by cross-validation when there are enough labels, scores it on the
    test split and prints a table. The table's CV column is the chosen point's cross-validated
    accuracy ± its sd over the validation folds: a wide sd means the pick was uncertain. Texts are
    encoded once per encoder; more heads cost no encoding.

    \b
    Examples:
      review-transfer fit rt --encoder minilm --head logreg --head rbf-svm
      review-transfer fit reviews.csv --encoder glove-6b-50d --budget 200 --seed 1 --out models
      review-transfer fit shop.csv --text-col "Review Text" --label-col Recommended --positive yes --budget 64
      review-transfer fit rt --encoder minilm --backend onnx --quantize int8   (the bundle records the backend)
      review-transfer fit rt --budget 1000 --self-train --unlabelled more_reviews.csv
      review-transfer fit rt --encoder "minilm[long=truncate]" --head logreg
      review-transfer fit phones.csv --budget 64 --prompts phone_prompts.txt
      review-transfer fit million.parquet --encoder glove-6b-50d --head sgd --out-of-core
    """
    from pipeline.data.summary import empty_test_line
    from pipeline.encoders.spec import EncoderOptions
    from pipeline.fit.job import FitJob, fit_source
    from pipeline.fit.out_of_core import Switch, parse_memory
    from pipeline.fit.train import FitPlan
    from pipeline.heads.prompts import resolve_prompts
    from pipeline.heads.registry import DEFAULT_HEAD
    from pipeline.study.tables import format_fit_table

    switch = Switch(out_of_core, parse_memory(memory_budget))
    self_train, unlabelled = pop_unlabelled(opts)
    plan = FitPlan(heads=heads or (DEFAULT_HEAD,), budget=budget, seed=seed, class_weight=class_weight, n_jobs=jobs,
                   self_train=self_train, prompts=resolve_prompts(prompts))
    job = FitJob(source, EncoderOptions((encoder,), long=long_text, max_length=max_length, precision=precision,
                                        pooling=pooling, cache_dir=cache_dir),
                 plan, out=out, backend=backend, quantize=quantize, min_cosine=min_cosine, switch=switch,
                 source_options=opts, unlabelled=unlabelled)
    fitted = fit_source(job, echo=lambda line: click.echo(line, err=True))
    first = fitted.bundles[0].manifest
    click.echo(f"{source}: trained on {first['train']['size']} labels, tested on {first['metrics']['test_size']} "
               f"held-out texts, encoder {fitted.spec}")
    if "self_train" in first:
        from pipeline.data.unlabelled import describe

        click.echo(describe(first["unlabelled"]) + "; pseudo-labels per round: "
                   + ", ".join(str(r["pseudo_labels"]) for r in first["self_train"]["rounds_run"]))
    click.echo(format_fit_table(fitted.bundles))
    empty = empty_test_line(first["metrics"]["test_size"], bool(opts.get("group_col")))
    for line in (empty, skewed_test_line(first), small_test_line(first)):
        if line:
            click.echo(line)


SKEWED = 0.7  # a test split with this share of one class or more gets a line saying what always answering it scores


def skewed_test_line(manifest: dict[str, Any]) -> str | None:
    """One line where the test split is mostly one class: what always answering it scores, so an accuracy that
    looks high is read against it; None for a balanced enough split."""
    test = (manifest.get("metrics") or {}).get("test") or {}
    if test.get("majority_rate") is None or test["majority_rate"] < SKEWED:
        return None
    (tn, fp), (fn, tp) = test["confusion_matrix"]
    common = manifest["label_names"][int(fn + tp > tn + fp)]
    return (f"the test split is {test['majority_rate']:.1%} {common!r}: always answering {common!r} scores "
            f"{test['majority_rate']:.3f}; read accuracy against that, and macro-F1 (evaluate also gives balanced accuracy)")


SMALL_TEST = 100  # a test split of fewer texts gets a line with its accuracy's 95% interval


def small_test_line(manifest: dict[str, Any]) -> str | None:
    """One line where the test split is small (a few groups, a small file): the 95% interval of its accuracy, so
    1.000 on 21 texts is read as what it is; None from :data:`SMALL_TEST` texts up."""
    from pipeline.intervals import wilson_interval

    test = (manifest.get("metrics") or {}).get("test") or {}
    if not test.get("confusion_matrix"):
        return None
    (tn, fp), (fn, tp) = test["confusion_matrix"]
    n = tn + fp + fn + tp
    if not n or n >= SMALL_TEST:
        return None
    low, high = wilson_interval(tn + tp, n)
    return (f"the test split holds only {n} texts: accuracy {(tn + tp) / n:.3f} has a 95% interval of {low:.3f}-"
            f"{high:.3f}; score on more labelled texts with evaluate, or compare heads with compare --split validation")


def _refuse_file_as_text(texts: tuple[str, ...]) -> None:
    """A TEXT argument that names a data file (``predict BUNDLE reviews.csv``) was meant for --input: say so,
    rather than label the file's name as a review."""
    from pathlib import Path

    from pipeline.data.readers import FORMATS

    named = next((t for t in texts if Path(t).suffix.lower() in FORMATS and Path(t).is_file()), None)
    if named is not None:
        raise click.UsageError(f"{named!r} is a file, and TEXT arguments are labelled as written: label its texts "
                               f"with --input {named} (and --text-col if they are not in 'text').")

@click.command(short_help="Label texts (or the rows of a file) with a model bundle.")
@click.argument("bundle", type=click.Path(file_okay=False))  # a missing one may be a swap to recover
@click.argument("texts", nargs=-1)
@click.option("--input", "input_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="File of texts to label (.csv/.tsv/.jsonl/.json/.parquet): one output row per input row, in order.")
@click.option("--text-col", default="text", show_default=True, help="Column of --input holding the text.")
@click.option("--out", "--output", "output", default=None, type=click.Path(dir_okay=False), callback=_output,
              help="Write the text (under --text-col's name with --input), label and p_positive to a .csv or .jsonl "
                   "file instead of printing. --output is the same option under its older name.")
@click.option("--keep-col", "keep_cols", multiple=True,
              help="A column of --input (an id) to carry into each output row, before the text; repeat for more.")
@click.option("--excel", is_flag=True, help="Write the --out .csv as Excel reads UTF-8 (with a byte-order mark), "
              "so accented and non-Latin texts show right; for an --input .csv separated by ';', with ';' and "
              "decimal commas, as Excel writes and reads CSV where the decimal mark is a comma.")
@_long_text_options
@_prior_options
@_trust_options
@_cache_dir_option
@_handle_errors
def predict(bundle: str, texts: tuple[str, ...], input_file: str | None, text_col: str, output: str | None,
            keep_cols: tuple[str, ...], excel: bool, long_text: str | None, max_length: int | None,
            prior: float | None, adapt_prior: bool,
            encoder_path: str | None, trust_encoder: bool, allow_legacy: bool,
            cache_dir: str | None) -> None:
    """Label TEXTS (or the texts of --input) with the model BUNDLE: label and probability of positive.

    \b
    Examples:
      review-transfer predict models/rt-minilm-logreg-ball-s0 "A triumph." "Dull and overlong."
      review-transfer predict models/rt-minilm-logreg-ball-s0 --input new.csv --out labelled.jsonl
      review-transfer predict models/rt-minilm-logreg-ball-s0 --input orders.csv --text-col comment --keep-col order_id --out labelled.csv --excel
      review-transfer predict models/rt-minilm-ft-b1000 --input full_reviews.csv --max-length 128
    """
    from pipeline.predict.predict import BundleLoad, Prediction, predict_texts

    if bool(texts) == bool(input_file):
        raise click.UsageError("give either TEXT arguments or --input FILE (not both).")
    _refuse_file_as_text(texts)
    rows, notes = predict_texts(Prediction(
        BundleLoad(bundle, cache_dir=cache_dir, long_text=long_text, max_length=max_length, encoder_path=encoder_path,
                   trust_encoder=trust_encoder, allow_legacy=allow_legacy),
        texts=texts, input_file=input_file, text_col=text_col, output=output, prior=prior, adapt_prior=adapt_prior,
        keep_cols=keep_cols, excel=excel))
    for line in notes:
        click.echo(line, err=True)
    if not output:
        for r in rows:
            p = "" if r["p_positive"] is None else f"{r['p_positive']:.3f}"
            kept = "".join(f"{'' if r[c] is None else r[c]}\t" for c in keep_cols if c != text_col)
            click.echo(f"{kept}{r['label']}\t{p}\t{r['text']}")
    end_without_teardown(click.get_current_context().find_root().command)

@click.command(short_help="Score a bundle on labelled data: accuracy, F1, AUC, shift.")
@click.argument("bundle", type=click.Path(file_okay=False))  # a missing one may be a swap to recover
@click.argument("source")
@source_options
@click.option("--split", "which", type=click.Choice(["test", "all"]), default="test", show_default=True,
              help="For SOURCE 'rt' only: score its held-out test split (the bundle trained on its pool) or all of it.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@_long_text_options
@_prior_options
@_trust_options
@_cache_dir_option
@_handle_errors
def evaluate(bundle: str, source: str, which: str, as_json: bool, long_text: str | None, max_length: int | None,
             prior: float | None, adapt_prior: bool, encoder_path: str | None, trust_encoder: bool,
             allow_legacy: bool, cache_dir: str | None, **opts: Any) -> None:
    """Score BUNDLE on the labelled SOURCE: accuracy, macro-F1, ROC-AUC, log-loss, ECE, confusion matrix.

    Any labelled file works, e.g. reviews from another site, to measure out-of-domain transfer. The
    domain-shift check (how well a classifier tells these texts from the bundle's training texts;
    0.5 = alike) is reported too, with a warning above 0.75 (--json: "domain_shift").

    \b
    Examples:
      review-transfer evaluate models/rt-minilm-logreg-ball-s0 rt                   (RT's held-out test split)
      review-transfer evaluate models/rt-minilm-logreg-ball-s0 shop.csv --text-col "Review Text" --label-col stars --positive 4,5 --negative 1,2
      review-transfer evaluate models/rt-minilm-logreg-ball-s0 site.csv --prior 0.15 --json   (a known positive rate)
    """
    import json

    from pipeline.predict.evaluate import Evaluation, evaluate_bundle
    from pipeline.predict.predict import BundleLoad
    from pipeline.study.tables import format_scores

    scores, label_names = evaluate_bundle(Evaluation(
        BundleLoad(bundle, cache_dir=cache_dir, long_text=long_text, max_length=max_length, encoder_path=encoder_path,
                   trust_encoder=trust_encoder, allow_legacy=allow_legacy),
        source, which, source_options=opts, prior=prior, adapt_prior=adapt_prior),
        echo=lambda line: click.echo(line, err=True))
    click.echo(json.dumps(scores, indent=2) if as_json else format_scores(scores, label_names))
