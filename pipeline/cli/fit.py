"""Stage two on the command line: ``fit`` heads into bundles, ``predict`` and ``evaluate`` with a bundle."""

from __future__ import annotations

from typing import Any

import click

from pipeline.cli.options import (
    ENCODER_HELP, SEED, _backend_options, _budget, _cache_dir_option, _encoder_flags, _handle_errors, _long_text_options, _output, _prior_options, _trust_options, load_source, prompts_option, source_options,
)
from pipeline.cli.unlabelled import pop_unlabelled, unlabelled_options
from pipeline.encoders.spec import DEFAULT_ENCODER


@click.command()
@click.argument("source")
@source_options
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True,
              help=ENCODER_HELP + " The default is the most accurate; minilm is about 6x faster.")
@_encoder_flags
@click.option("--head", "heads", multiple=True, help="scikit-learn head (repeatable): logreg (default), linear-svm, "
              "rbf-svm, knn, random-forest, hist-gb, mlp, ridge, nb, sgd.")
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
      review-transfer fit rt --encoder minilm --backend onnx --quantize int8   (the bundle records the backend)
      review-transfer fit rt --budget 1000 --self-train --unlabelled more_reviews.csv
      review-transfer fit rt --encoder "minilm[long=truncate]" --head logreg
      review-transfer fit phones.csv --budget 64 --prompts phone_prompts.txt
      review-transfer fit million.parquet --encoder glove-6b-50d --head sgd --out-of-core
    """
    from pathlib import Path

    from pipeline.encoders.auto import command_encoder, wants_auto
    from pipeline.store.cache import default_cache_dir
    from pipeline.heads.registry import DEFAULT_HEAD
    from pipeline.heads.prompts import resolve_prompts
    from pipeline.encoders.spec import EncoderOptions
    from pipeline.study.tables import format_fit_table
    from pipeline.fit.train import FitPlan, bundle_name, iter_fit
    from pipeline.fit.out_of_core import Switch, choose, fit_out_of_core, parse_memory

    switch = Switch(out_of_core, parse_memory(memory_budget))
    self_train, unlabelled = pop_unlabelled(opts)
    prompt_set = resolve_prompts(prompts)
    spec = EncoderOptions((encoder,), long=long_text, max_length=max_length, precision=precision, pooling=pooling,
                          cache_dir=cache_dir).parsed()[0]  # backend and quantize: below, per spec
    from pipeline.bundle.manifest import signing_key

    signing_key()  # an empty key fails before the work, not at the save
    ds = load_source(source, **opts)
    if ds.report.label_line():  # values merged into a class (--positive) or renamed
        click.echo(f"{source}: label values {ds.report.label_line()}", err=True)
    raw, encoder = encoder, spec
    if wants_auto(raw, backend, quantize) or backend not in (None, "torch"):  # guarded on SOURCE, recorded in bundles
        options = {"work_dir": cache_dir or default_cache_dir(), "source_options": opts}
        encoder, lines = command_encoder(raw, spec, ds.texts, options, backend=backend, quantize=quantize,
                                         min_median=min_cosine)
        for line in lines:
            click.echo(line, err=True)
    encoder, streamed, line = choose(list(heads or (DEFAULT_HEAD,)), ds, encoder, switch, budget=budget,
                                     self_train=self_train is not None, cache_dir=cache_dir, source_options=opts)
    if line:
        click.echo(f"fit: {line}", err=True)
    fitted = []
    plan = FitPlan(heads=heads or (DEFAULT_HEAD,), budget=budget, seed=seed, class_weight=class_weight, n_jobs=jobs,
                   self_train=self_train, prompts=prompt_set)
    bundles = [fit_out_of_core(ds, encoder=encoder, seed=seed, cache_dir=cache_dir, class_weight=class_weight)] \
        if streamed else iter_fit(ds, plan, encoder=encoder, cache_dir=cache_dir, source_options=opts,
                                  unlabelled=unlabelled)
    for bundle in bundles:
        path = bundle.save(Path(out) / bundle_name(bundle))
        click.echo(f"saved {bundle.manifest['head']['name']}: {path}", err=True)
        fitted.append(bundle)
    train = fitted[0].manifest["train"]
    click.echo(f"{source}: trained on {train['size']} labels, tested on {fitted[0].manifest['metrics']['test_size']} "
               f"held-out texts, encoder {spec}")
    if "self_train" in fitted[0].manifest:
        from pipeline.data.unlabelled import describe

        rounds = fitted[0].manifest["self_train"]["rounds_run"]
        click.echo(describe(fitted[0].manifest["unlabelled"]) + "; pseudo-labels per round: "
                   + ", ".join(str(r["pseudo_labels"]) for r in rounds))
    click.echo(format_fit_table(fitted))


@click.command()
@click.argument("bundle", type=click.Path(file_okay=False))  # a missing one may be a swap to recover
@click.argument("texts", nargs=-1)
@click.option("--input", "input_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="File of texts to label (.csv/.tsv/.jsonl/.json/.parquet): one output row per input row, in order.")
@click.option("--text-col", default="text", show_default=True, help="Column of --input holding the text.")
@click.option("--output", default=None, type=click.Path(dir_okay=False), callback=_output,
              help="Write text, label, p_positive to a .csv or .jsonl file instead of printing.")
@_long_text_options
@_prior_options
@_trust_options
@_cache_dir_option
@_handle_errors
def predict(bundle: str, texts: tuple[str, ...], input_file: str | None, text_col: str, output: str | None,
            long_text: str | None, max_length: int | None, prior: float | None, adapt_prior: bool,
            encoder_path: str | None, trust_encoder: bool, allow_legacy: bool,
            cache_dir: str | None) -> None:
    """Label TEXTS (or the texts of --input) with the model BUNDLE: label and probability of positive.

    \b
    Examples:
      review-transfer predict models/rt-minilm-logreg-ball-s0 "A triumph." "Dull and overlong."
      review-transfer predict models/rt-minilm-logreg-ball-s0 --input new.csv --output labelled.jsonl
      review-transfer predict models/rt-minilm-ft-b1000 --input full_reviews.csv --max-length 128
    """
    from pipeline.bundle.bundle import Bundle
    from pipeline.data.dataset import read_texts
    from pipeline.predict.predict import label_texts, write_rows

    if bool(texts) == bool(input_file):
        raise click.UsageError("give either TEXT arguments or --input FILE (not both).")
    if input_file:
        texts = tuple(read_texts(input_file, text_col))
    model = Bundle.load(bundle, cache_dir=cache_dir, long_text=long_text, max_length=max_length,
                        encoder_path=encoder_path, trust_encoder=trust_encoder, allow_legacy=allow_legacy)
    model.use_cache = input_file is not None  # TEXT arguments are new: encoding them beats opening the cache
    rows, adapted, shift = label_texts(model, texts, prior=prior, adapt_prior=adapt_prior)
    if adapted is not None:
        click.echo(adapted.describe(), err=True)
    if shift.get("line"):
        click.echo(shift["line"], err=True)
    empty = sum(r["p_positive"] is None for r in rows)
    if empty:
        click.echo(f"{empty} empty text(s) left unlabelled (empty label and probability)", err=True)
    if output:
        click.echo(f"wrote {len(rows)} predictions to {write_rows(rows, output)}", err=True)
    else:
        for r in rows:
            p = "" if r["p_positive"] is None else f"{r['p_positive']:.3f}"
            click.echo(f"{r['label']}\t{p}\t{r['text']}")


@click.command()
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
    """
    import json

    from pipeline.predict.evaluate import Evaluation, evaluate_bundle, evaluation_set
    from pipeline.study.tables import format_scores

    ds = evaluation_set(source, load_source(source, **opts), which)  # a bad SOURCE fails before the model loads
    scores, label_names = evaluate_bundle(Evaluation(
        bundle, ds, cache_dir=cache_dir, long_text=long_text, max_length=max_length, encoder_path=encoder_path,
        trust_encoder=trust_encoder, allow_legacy=allow_legacy, prior=prior, adapt_prior=adapt_prior))
    click.echo(json.dumps(scores, indent=2) if as_json else format_scores(scores, label_names))
