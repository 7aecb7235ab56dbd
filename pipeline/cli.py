"""The ``review-transfer`` command line: thin click commands that parse options and call the package.

Only click, the standard library and light project modules are imported here; torch,
transformers and sentence-transformers are imported inside the commands that need them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import click

from pipeline import ReviewTransferError, __version__
from pipeline.cli_options import SEED, _cache_dir_option, _handle_errors, load_source, prompts_option, source_options
from pipeline.cli_unlabelled import adapt, pop_unlabelled, unlabelled_options
from pipeline.spec import DEFAULT_ENCODER

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="review-transfer")
def main() -> None:
    """Classify reviews as positive or negative from a few hundred labels, by transfer learning.

    \b
    Stage one   embed     encode texts once into an HDF5 cache (GloVe, Word2Vec, MiniLM, BERT...)
    Stage two   fit       train scikit-learn heads on cached vectors, save model bundles
                predict   label new texts with a bundle;  evaluate: score a bundle on labelled data
                retarget  carry a bundle to another site with 16-64 of its labels
    Optional    finetune  back-propagate through a language model with a new task head
                adapt     continue pretraining an encoder on unlabelled texts (--self-train: fit/finetune)
    Study       compare   learning curves over label budgets x seeds x encoders x heads
    Labelling   suggest   the texts most worth labelling next (active learning), as a CSV
                label     a local web page to label them one at a time, the model refitted after each

    SOURCE is a .csv/.tsv/.jsonl/.json/.parquet file, 'rt' (Rotten Tomatoes critic snippets,
    downloaded on first use) or 'hf:NAME[:SPLIT]' (Hugging Face datasets).
    Start with:  review-transfer data show rt
    """
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    """Warnings as ``warning: MESSAGE`` lines: the source line and path mean nothing to CLI users."""
    return f"warning: {message}\n"


# ---------------------------------------------------------------------------------------------- data
@main.group()
def data() -> None:
    """Inspect a data source."""


@data.command("show")
@click.argument("source")
@source_options
@click.option("--rows", "n_rows", default=5, show_default=True, help="How many example rows to print.")
@click.option("--encoder", "encoders", multiple=True,
              help="Also count texts longer than this transformer's max length (repeatable), e.g. minilm; loads the model.")
@_handle_errors
def data_show(source: str, n_rows: int, encoders: tuple[str, ...], **opts: Any) -> None:
    """Print rows, class balance, text lengths, what was dropped, groups and split sizes of SOURCE."""
    from pipeline.data import split
    from pipeline.data_summary import format_summary

    specs = _single_specs(encoders)  # a typo fails before the data are read
    ds = load_source(source, require_labels=False, **opts)
    pool, test = split(ds)
    click.echo(format_summary(ds, pool, test, n_rows))
    if specs:
        from pipeline.encoders import get_encoder

        for spec in specs:
            enc = get_encoder(spec)
            stats = enc.length_stats(ds.texts) if hasattr(enc, "length_stats") else None
            click.echo(f"{spec}: " + (stats.line() if stats else "a word-vector encoder: sees every text whole"))


def _single_specs(encoders: tuple[str, ...], **flags: Any) -> list[Any]:
    """The parsed encoder specs (flags fill their unset options) with each combination ``A+B`` replaced
    by its parts, repeats dropped. Raises SpecError (shown as one line) before any work."""
    from pipeline.spec import apply_flags

    singles = [part for spec in apply_flags(list(encoders), **flags) for part in (spec.parts or (spec,))]
    return list({str(s): s for s in singles}.values())


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
                "wordllama, minilm, mpnet, st:NAME_OR_PATH, hf:NAME_OR_PATH; A+B puts both side by side; e.g. "
                "minilm[long=truncate,max_length=128], glove-6b-50d[pooling=sif]+minilm.")


# ---------------------------------------------------------------------------------------------- stage two
def _budget(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from pipeline.data import parse_budget

    try:
        return None if value is None else parse_budget(value)
    except ReviewTransferError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def _output(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check --output before any work: a .csv or .jsonl file in an existing folder."""
    if value is not None:
        from pipeline.predict import check_output

        try:
            check_output(value)
        except ReviewTransferError as e:
            raise click.BadParameter(str(e).removeprefix(f"--output {value}: "), ctx, param) from None
    return value


def _prior(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is None:
        return None
    from pipeline.prior import check_prior

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


def _trust_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --encoder-path and --trust-encoder: what a bundle's encoder may resolve to beyond packaged
    models and the bundle's own encoder/ directory."""
    func = click.option("--trust-encoder", is_flag=True,
                        help="Resolve the bundle's encoder spec as if you typed it: its local paths, hub names, "
                             "pickled .kv files, retraining w2v-train from SOURCE. Only for bundles you made.")(func)
    return click.option("--encoder-path", default=None, type=click.Path(exists=True),
                        help="The model directory or vector file to use for a bundle whose encoder was a path "
                             "outside it (st:, hf:, w2v:, glove:); its fingerprint must still match.")(func)


# ---------------------------------------------------------------------------------------------- stage one
def _engine_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --engine and --address (where the work runs)."""
    func = click.option("--address", default=None,
                        help="--engine ray: cluster to join, e.g. auto (a node of a running cluster) or "
                             "ray://HEAD:10001.  [default: a local Ray instance]")(func)
    return click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                        help="local: this process; ray: a Ray cluster (pip install 'review-transfer[ray]'; "
                             "--cache-dir must be on a filesystem every node shares).")(func)


def _query_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add compare's --query, --query-batch, --query-refit and --split (simulated active learning; see
    pipeline.active_compare)."""
    from pipeline.active import DEFAULT_REFIT, REFITS, STRATEGIES

    func = click.option("--split", "split_name", type=click.Choice(["test", "validation"]), default="test",
                        show_default=True,
                        help="--query: score on the test split, or on a validation split carved out of the pool "
                             "(whole groups, about one in five; the strategies draw from the rest and the test split "
                             "is never read), to choose settings.")(func)
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
    func = click.option("--quantize", type=click.Choice(["none", "int8"]), default="none", show_default=True,
                        help="int8: quantized weights (backend onnx: dynamic int8; openvino: int8 weights).")(func)
    return click.option("--backend", type=click.Choice(["torch", "onnx", "openvino", "auto"]), default="torch",
                        show_default=True,
                        help="Transformers: torch; onnx (onnxruntime) or openvino, exported once into the cache "
                             "(pip install 'review-transfer[onnx]' / '[openvino]'); auto: the fastest whose "
                             "probe keeps --min-cosine.")(func)


@main.command()
@click.argument("source")
@source_options
@click.option("--encoder", "encoders", multiple=True, required=True, help=ENCODER_HELP + " Repeatable.")
@_cache_dir_option
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where transformers run.")
@_encoder_flags
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Texts per forward pass (default: 128 CPU, 256 GPU).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Texts encoded and committed to the cache at a time (a crash loses at most one chunk).")
@_backend_options
@_engine_options
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="--engine ray: encoding actors.  [default: one per GPU, else one per CPU of the cluster]")
@click.option("--shard-size", type=click.IntRange(min=1), default=4096, show_default=True,
              help="--engine ray: texts per Ray task and staged shard file (what a killed worker redoes).")
@click.option("--unlabelled", "unlabelled", multiple=True, metavar="SOURCE",
              help="Also embed the texts of SOURCE (repeatable; read with --text-col; labels not read), e.g. "
                   "the unlabelled reviews a later fit --self-train --unlabelled SOURCE will use.")
@_handle_errors
def embed(source: str, encoders: tuple[str, ...], cache_dir: str | None, device: str, precision: str | None,
          max_length: int | None, batch_size: int | None, pooling: str | None, chunk_size: int, long_text: str | None,
          backend: str, quantize: str, min_cosine: float, engine: str, address: str | None, workers: int | None,
          shard_size: int, unlabelled: tuple[str, ...], **opts: Any) -> None:
    """Encode every text of SOURCE (labelled or not) into the embedding cache, once per encoder.

    Only texts missing from the cache are encoded; a killed run resumes where it stopped.
    .parquet/.csv/.tsv/.jsonl files are read in batches, never whole.

    \b
    Examples:
      review-transfer embed rt --encoder glove-6b-50d --encoder minilm
      review-transfer embed reviews.csv --text-col review --encoder "w2v-train:reviews.csv[pooling=sif]"
      review-transfer embed rt --encoder "minilm[long=truncate]" --encoder minilm
      review-transfer embed rt --encoder minilm --backend onnx --quantize int8
      review-transfer embed big.parquet --encoder minilm --engine ray --address auto --cache-dir /shared/cache
    """
    import itertools

    from pipeline.cache import EmbeddingCache
    from pipeline.encoders.base import ZeroVectorWarning
    from pipeline.encoders.probe import guarded_encoder
    from pipeline.readers import check_source
    from pipeline.stream import fill_stream

    warnings.simplefilter("ignore", ZeroVectorWarning)  # the summary below counts texts with no known word

    def batches() -> Any:
        return itertools.chain(_text_batches(source, opts), *(_text_batches(u, {"text_col": opts["text_col"]}, False)
                                                               for u in unlabelled))

    exported = {} if backend == "auto" else {"backend": backend, "quantize": quantize}
    specs = _single_specs(encoders, precision=precision, max_length=max_length, pooling=pooling,
                          long_text=long_text, **exported)  # A+B is cached as A and as B
    for path in (source, *unlabelled):  # a missing file fails before any model loads
        check_source(path)
    cache = EmbeddingCache(cache_dir, chunk_size=chunk_size)
    settings = {"device": device, "batch_size": batch_size, "source_options": opts}
    auto = {"backend": "auto", "quantize": quantize} if backend == "auto" else {}  # chosen per spec by the guard
    # texts the accuracy guard of exported backends samples (and backend auto is chosen on)
    probe_texts = list(itertools.islice(itertools.chain.from_iterable(batches()), 20_000)) if backend != "torch" else []
    for spec in specs:
        chosen = {}
        if engine == "local" or backend != "torch":  # ray actors load torch models themselves
            enc, lines = guarded_encoder(spec, probe_texts, {**settings, **auto, "work_dir": cache.dir}, min_cosine)
            for line in lines:
                click.echo(line, err=True)
            chosen = {"backend": getattr(enc, "backend", "torch"), "quantize": getattr(enc, "quantize", "none")}
        if engine == "ray":
            from pipeline.engines.ray import ray_fill

            report = ray_fill(str(spec), batches(), cache.dir, options={**settings, **chosen}, address=address,
                              workers=workers, shard_size=shard_size)
        else:
            click.echo(f"{enc.describe()}", err=True)
            report = fill_stream(cache, enc, batches())
        if not report.texts:
            raise click.ClickException(f"{source}: no non-empty texts in column {opts['text_col']!r}.")
        click.echo(report.summary())
        if engine == "local" and hasattr(enc, "length_stats"):
            click.echo("  " + enc.length_stats(itertools.chain.from_iterable(batches())).line())


def _text_batches(source: str, opts: dict[str, Any], labelled_source: bool = True) -> Any:
    """Batches of the texts of ``source``: streamed from a file where possible, else loaded whole
    (only the text column of an unlabelled source is read)."""
    from pipeline.stream import iter_text_batches, streamable

    if streamable(source):
        return iter_text_batches(source, text_col=opts["text_col"])
    if labelled_source:
        return [load_source(source, require_labels=False, **opts).texts]
    from pipeline.unlabelled.texts import read_unlabelled

    return list(read_unlabelled([source], text_col=opts["text_col"]).values())


@main.group("cache")
def cache_group() -> None:
    """List, inspect, check or delete embedding cache files."""


@cache_group.command("ls")
@_cache_dir_option
@_handle_errors
def cache_ls(cache_dir: str | None) -> None:
    """One line per cache file: fingerprint, encoder spec, dim, rows, size, last change."""
    import time

    from pipeline.cache import CacheError, list_stores

    stores = list_stores(cache_dir)
    if not stores:
        click.echo("no cache files")
    for store in stores:
        try:
            s = store.summary()
        except CacheError:
            click.echo(f"{store.fingerprint}  UNREADABLE  (run: review-transfer cache verify {store.fingerprint})")
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["modified"]))
        settings = ",".join(str(s["params"][k]) for k in ("pooling", "precision", "max_length") if k in s["params"])
        shards = f" +{s['shards']} shards" if s["shards"] else ""
        click.echo(f"{s['fingerprint']}  {s['spec']:<20} {settings:<16} {s['dim']:>4}-d {s['rows']:>9,} rows "
                   f"{s['bytes'] / 1e6:>8.1f} MB  {when}{shards}")


@cache_group.command("info")
@click.argument("fingerprint")
@_cache_dir_option
@_handle_errors
def cache_info(fingerprint: str, cache_dir: str | None) -> None:
    """Everything about one cache file (FINGERPRINT, a unique prefix of it, or the .h5 path)."""
    import json

    from pipeline.cache import find_store

    s = find_store(cache_dir, fingerprint).summary()
    for name in ("fingerprint", "spec", "dim", "rows", "shards", "bytes", "path"):
        click.echo(f"{name:<12} {s[name]}")
    click.echo(f"{'encoder':<12} {json.dumps(s['params'], sort_keys=True)}")


@cache_group.command("verify")
@click.argument("fingerprints", nargs=-1)
@_cache_dir_option
@_handle_errors
def cache_verify(fingerprints: tuple[str, ...], cache_dir: str | None) -> None:
    """Read every row of the given cache files (default: all); exit 1 if any is truncated or corrupted."""
    from pipeline.cache import find_store, list_stores

    stores = [find_store(cache_dir, f) for f in fingerprints] if fingerprints else list_stores(cache_dir)
    bad = 0
    for store in stores:
        problems = store.verify()
        if problems:
            bad += 1
            click.echo(f"CORRUPTED {store.fingerprint}")
            for line in problems:
                click.echo(f"  {line}")
        else:
            click.echo(f"ok        {store.fingerprint}")
    if bad:
        raise click.ClickException(f"{bad} of {len(stores)} cache files are damaged; rebuild them as shown above.")


@cache_group.command("rm")
@click.argument("fingerprints", nargs=-1)
@click.option("--all", "remove_all", is_flag=True, help="Remove every cache file.")
@_cache_dir_option
@_handle_errors
def cache_rm(fingerprints: tuple[str, ...], remove_all: bool, cache_dir: str | None) -> None:
    """Delete the cache files of FINGERPRINTS (or --all); they are rebuilt by the next embed."""
    from pipeline.cache import find_store, list_stores

    if bool(fingerprints) == remove_all:
        raise click.UsageError("give FINGERPRINT arguments or --all (not both).")
    stores = list_stores(cache_dir) if remove_all else [find_store(cache_dir, f) for f in fingerprints]
    for store in stores:
        store.remove()
        click.echo(f"removed {store.fingerprint}")


@main.command()
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
@prompts_option
@_backend_options
@unlabelled_options
@_cache_dir_option
@_handle_errors
def fit(source: str, encoder: str, heads: tuple[str, ...], budget: int | None, seed: int, class_weight: str | None,
        out: str, jobs: int, prompts: str, backend: str, quantize: str, min_cosine: float, cache_dir: str | None,
        precision: str | None, max_length: int | None, pooling: str | None, long_text: str | None,
        **opts: Any) -> None:
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
    """
    from pathlib import Path

    from pipeline.cache import default_cache_dir
    from pipeline.heads import DEFAULT_HEAD
    from pipeline.prompts import resolve_prompts
    from pipeline.spec import apply_flags
    from pipeline.tables import format_fit_table
    from pipeline.train import bundle_name, iter_fit

    self_train, unlabelled = pop_unlabelled(opts)
    prompt_set = resolve_prompts(prompts)
    exported = {} if backend == "auto" else {"backend": backend, "quantize": quantize}
    spec = apply_flags([encoder], precision=precision, max_length=max_length, pooling=pooling, long_text=long_text,
                       **exported)[0]
    ds = load_source(source, **opts)
    encoder = spec
    if backend != "torch":  # exported backends: guarded on the texts of SOURCE, recorded in the bundles
        from pipeline.encoders.probe import guarded_encoder

        options = {"work_dir": cache_dir or default_cache_dir(), "source_options": opts,
                   **({"backend": "auto", "quantize": quantize} if backend == "auto" else {})}
        encoder, lines = guarded_encoder(spec, ds.texts, options, min_cosine)
        for line in lines:
            click.echo(line, err=True)
    fitted = []
    for bundle in iter_fit(ds, encoder=encoder, heads=heads or (DEFAULT_HEAD,), budget=budget, seed=seed,
                           cache_dir=cache_dir, class_weight=class_weight, n_jobs=jobs, source_options=opts,
                           self_train=self_train, unlabelled=unlabelled, prompts=prompt_set):
        path = bundle.save(Path(out) / bundle_name(bundle))
        click.echo(f"saved {bundle.manifest['head']['name']}: {path}", err=True)
        fitted.append(bundle)
    train = fitted[0].manifest["train"]
    click.echo(f"{source}: trained on {train['size']} labels, tested on {fitted[0].manifest['metrics']['test_size']} "
               f"held-out texts, encoder {spec}")
    if "self_train" in fitted[0].manifest:
        from pipeline.unlabelled.texts import describe

        rounds = fitted[0].manifest["self_train"]["rounds_run"]
        click.echo(describe(fitted[0].manifest["unlabelled"]) + "; pseudo-labels per round: "
                   + ", ".join(str(r["pseudo_labels"]) for r in rounds))
    click.echo(format_fit_table(fitted))


@main.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
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
            encoder_path: str | None, trust_encoder: bool,
            cache_dir: str | None) -> None:
    """Label TEXTS (or the texts of --input) with the model BUNDLE: label and probability of positive.

    \b
    Examples:
      review-transfer predict models/rt-minilm-logreg-ball-s0 "A triumph." "Dull and overlong."
      review-transfer predict models/rt-minilm-logreg-ball-s0 --input new.csv --output labelled.jsonl
      review-transfer predict models/rt-minilm-ft-b1000 --input full_reviews.csv --max-length 128
    """
    from pipeline.bundle import Bundle
    from pipeline.data import read_texts
    from pipeline.predict import label_texts, write_rows

    if bool(texts) == bool(input_file):
        raise click.UsageError("give either TEXT arguments or --input FILE (not both).")
    if input_file:
        texts = tuple(read_texts(input_file, text_col))
    model = Bundle.load(bundle, cache_dir=cache_dir, long_text=long_text, max_length=max_length,
                        encoder_path=encoder_path, trust_encoder=trust_encoder)
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


@main.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
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
             cache_dir: str | None, **opts: Any) -> None:
    """Score BUNDLE on the labelled SOURCE: accuracy, macro-F1, ROC-AUC, log-loss, ECE, confusion matrix.

    Any labelled file works, e.g. reviews from another site, to measure out-of-domain transfer. The
    domain-shift check (how well a classifier tells these texts from the bundle's training texts;
    0.5 = alike) is reported too, with a warning above 0.75 (--json: "domain_shift").
    """
    import json

    from pipeline.bundle import Bundle
    from pipeline.tables import format_scores
    from pipeline.train import evaluation_set, score

    ds = evaluation_set(source, load_source(source, **opts), which)  # a bad SOURCE fails before the model loads
    model = Bundle.load(bundle, cache_dir=cache_dir, long_text=long_text, max_length=max_length,
                        encoder_path=encoder_path, trust_encoder=trust_encoder)
    scores = score(model, ds, prior=prior, adapt_prior=adapt_prior)
    click.echo(json.dumps(scores, indent=2) if as_json else format_scores(scores, model.label_names))


# ---------------------------------------------------------------------------------------------- finetune
@main.command()
@click.argument("source")
@source_options
@click.option("--encoder", default="minilm", show_default=True,
              help="Model to fine-tune: minilm, mpnet, st:NAME_OR_PATH, hf:NAME_OR_PATH, with options in brackets: "
                   "max_length and precision (as --max-length, --precision), long (how the tuned model treats "
                   "long texts when predicting; default truncate), e.g. minilm[max_length=128].")
@click.option("--method", type=click.Choice(["head", "setfit"]), default="head", show_default=True,
              help="head: new task head trained end to end; setfit: contrastive pairs, then logistic regression.")
@click.option("--budget", default=None, callback=_budget, help="Train on a balanced sample of N labels of the pool.  [default: all]")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the budget sample, validation slice, data order and dropout.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Bundle directory to write.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Passes over the data.  [default: head 3-10 by budget (at least 120 updates), setfit 1]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Encoder learning rate.  [default: head 3e-5, setfit 2e-5]")
@click.option("--head-lr", type=click.FloatRange(min=0, min_open=True), default=None, help="head: learning rate of the new head.  [default: 1e-3]")
@click.option("--head-type", type=click.Choice(["linear", "mlp"]), default=None,
              help="head: linear (logistic) or mlp (one hidden layer, dropout).  [default: linear]")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Texts (head) or pairs (setfit) per batch.  [default: 16]")
@click.option("--grad-accum", type=click.IntRange(min=1), default=None, help="Batches per optimizer step.  [default: 1]")
@click.option("--max-length", type=click.IntRange(min=8), default=None, help="Training window in word pieces (longer texts are cut); when predicting, longer texts are read "
              "whole through windows of this size.  [default: 64]")
@click.option("--val-fraction", type=click.FloatRange(0, 0.5), default=None,
              help="head: share of the budget held out for early stopping (e.g. 0.15); 0 = train on all labels.  [default: 0]")
@click.option("--patience", type=click.IntRange(min=1), default=None, help="head: epochs without improvement before stopping.  [default: 2]")
@click.option("--num-iterations", type=click.IntRange(min=1), default=None, help="setfit: positive (and negative) pairs per label.  [default: 20]")
@click.option("--max-pairs", type=click.IntRange(min=2), default=None, help="setfit: most pairs to train on, bounding the time.  [default: 10000]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True, help="Where to train.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True,
              help="auto: fp16 AMP on CUDA; bf16 autocast on CPUs with native bf16; else fp32.")
@click.option("--checkpoint-dir", default=None, type=click.Path(file_okay=False),
              help="Checkpoint after every epoch here; rerunning the command resumes.  [default: OUT.ckpt]")
@unlabelled_options
@click.option("--export", type=click.Choice(["onnx"]), default=None,
              help="Also save the tuned encoder as ONNX in the bundle (checked against torch fp32), so predict "
                   "runs it with onnxruntime, without importing torch.")
@_cache_dir_option
@_handle_errors
def finetune(source: str, encoder: str, method: str, budget: int | None, seed: int, out: str, device: str,
             precision: str, checkpoint_dir: str | None, export: str | None, cache_dir: str | None,
             **opts: Any) -> None:
    """Fine-tune ENCODER end to end on a label budget of SOURCE and save a model bundle to OUT.

    Uses the same leak-free split and balanced budget sample as `fit`, scores the result on the
    test split, and writes a bundle that `predict` and `evaluate` use like any other (its encoder/
    folder holds the tuned weights). A killed run resumes from its last checkpoint when rerun.

    \b
    Examples:
      review-transfer finetune rt --budget 1000 --out models/rt-minilm-ft-b1000
      review-transfer finetune rt --method setfit --budget 128 --seed 1 --out models/rt-setfit-b128
      review-transfer finetune rt --budget 128 --self-train --out models/rt-minilm-distil-b128
      review-transfer finetune rt --budget 1000 --export onnx --out models/rt-minilm-ft-onnx

    \b
    --self-train distils: the model fine-tuned on the labels (--method) labels the unlabelled texts (the
    pool outside the budget, plus --unlabelled), then a `head` student, starting from the teacher's
    tuned encoder, trains one epoch on the labels plus balanced pseudo-labelled texts (drawn from the
    --fraction the teacher is surest of, as many as the teacher's training passes, so the run costs
    about 3 teachers), aiming at the teacher's probabilities (--soft). Work files: OUT.self-train/.
    """
    import dataclasses
    import logging

    from pipeline.finetune import Recipe
    from pipeline.finetune import finetune as run_finetune
    from pipeline.spec import apply_flags
    from pipeline.tables import format_scores
    from pipeline.train import train_test

    log = logging.getLogger("pipeline.finetune")
    log.setLevel(logging.INFO)
    if not log.handlers:  # progress lines (epochs, resuming) on stderr
        log.addHandler(logging.StreamHandler())
    settings = {f.name: opts.pop(f.name) for f in dataclasses.fields(Recipe) if f.name in opts}
    self_train, unlabelled = pop_unlabelled(opts)
    (spec,) = apply_flags([encoder])  # a typo or a missing model fails before the data are read
    if self_train is None and unlabelled:
        raise click.UsageError("--unlabelled is used by --self-train here; add --self-train.")
    if self_train is not None and export:
        raise click.UsageError("--export onnx is not yet available with --self-train; fine-tune without it.")
    if self_train is not None:
        bundle = _distil(source, budget, seed, out, str(spec), method, self_train, unlabelled, device=device,
                         precision=precision, cache_dir=cache_dir, settings=settings, opts=opts)
    else:
        train, test = train_test(load_source(source, **opts), budget, seed)
        bundle = run_finetune(train, test=test, out=out, encoder=spec, method=method, seed=seed,
                              checkpoint_dir=checkpoint_dir, device=device, precision=precision, cache_dir=cache_dir,
                              export=export, **settings)
    details, n_test = bundle.manifest["finetune"], bundle.manifest["metrics"]["test_size"]
    click.echo(f"saved {bundle.path}: {method} fine-tuning of {spec} on {bundle.manifest['train']['size']} "
               f"labels{' and pseudo-labels' if self_train else ''} in {details['fit_seconds']:.0f} s "
               f"({bundle.manifest['head']['search']})")
    if bundle.manifest["metrics"]["test"]:
        click.echo(f"test split ({n_test} texts):")
        click.echo(format_scores(bundle.manifest["metrics"]["test"], bundle.label_names))


def _distil(source: str, budget: int | None, seed: int, out: str, encoder: str, method: str, self_train: Any,
            unlabelled: dict[str, list[str]], *, settings: dict[str, Any], opts: dict[str, Any], **runtime: Any) -> Any:
    """finetune --self-train: teacher, pseudo-labels, student (see pipeline.unlabelled.self_train.distil)."""
    import shutil
    from pathlib import Path

    from pipeline.unlabelled.self_train import distil
    from pipeline.unlabelled.texts import describe, for_budget

    train, test, unl = for_budget(load_source(source, **opts), budget, seed, unlabelled)
    click.echo(describe(unl.record), err=True)
    work = Path(f"{out}.self-train")
    bundle = distil(train, unl.texts, out=out, work_dir=work, encoder=encoder, teacher_method=method,
                    settings=self_train, seed=seed, test=test, unlabelled_record=unl.record, **runtime, **settings)
    shutil.rmtree(work, ignore_errors=True)
    record = bundle.manifest["self_train"]
    click.echo(f"teacher ({method}): test accuracy {record['teacher']['test_metrics']['accuracy']:.3f} in "
               f"{record['teacher']['seconds']:.0f} s; pseudo-labels per round: "
               f"{', '.join(str(r['pseudo_labels']) for r in record['rounds_run'])}; whole run "
               f"{record['cost_vs_teacher']:.1f}x the teacher's time", err=True)
    return bundle


# ---------------------------------------------------------------------------------------------- compare
def _transductive_note(ds: Any, unlabelled: dict[str, list[str]], test_sets: dict[str, Any]) -> str:
    """A title suffix when --unlabelled texts include texts of ``ds``'s test split or of a --test-set
    (scores on those sets are then transductive; else empty)."""
    from pipeline.data import split

    given = {t for texts in unlabelled.values() for t in texts}
    counts = {name: len(given & set(test.texts)) for name, test in {"test split": split(ds)[1], **test_sets}.items()}
    seen = ", ".join(f"{n:,} texts of {name}" for name, n in counts.items() if n)
    if seen:
        click.echo(f"warning: --unlabelled includes {seen}: self-training is transductive there.", err=True)
    return f" (transductive: {seen} among the unlabelled)" if seen else ""


@main.command()
@click.argument("source")
@source_options
@click.option("--preset", type=click.Choice(["quick", "full"]), default=None,
              help="quick: GloVe, MiniLM and mpnet + logreg at 32/128/1000 labels, 3 seeds (~10 min on 2 cores, half of it "
                   "encoding RT with mpnet once). "
                   "full: static vs transformer features vs fine-tuning, each also self-trained on the rest of the "
                   "pool (--self-train), over all budgets, 5 seeds (hours). "
                   "Options given explicitly override the preset.")
@click.option("--encoder", "encoders", multiple=True,
              help=ENCODER_HELP + " Repeatable: variants of one encoder (minilm[long=truncate] and minilm) are "
                                  "compared side by side, each with its own cache.")
@_encoder_flags
@click.option("--head", "heads", multiple=True, help="scikit-learn head (repeatable), e.g. logreg, rbf-svm.")
@click.option("--finetune", "finetune", multiple=True, type=click.Choice(["head", "setfit"]),
              help="Also fine-tune each encoder end to end with this method (repeatable).")
@click.option("--budgets", default=None, help="Label budgets, comma-separated; 'all' = the whole pool.  [default: 32,128,1000]")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="Seeds per budget (0..N-1).  [default: 3]")
@click.option("--test-set", "test_sets", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Extra labelled file to score every cell on (out-of-domain transfer); same column options.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Report directory; rerunning with the same --out resumes.  [default: reports/<preset or compare>]")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=-1), help="Cells fitted in parallel processes (joblib; -1 = all cores).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="Embedding cache (default: $REVIEW_TRANSFER_CACHE or ./cache).")
@click.option("--no-plot", is_flag=True, help="Skip the PNG plot (no matplotlib needed).")
@click.option("--adapt-prior", is_flag=True,
              help="Also score each frozen cell with guarded class-prior adaptation (as evaluate --adapt-prior): "
                   "adapted and plain accuracy side by side, with the decision and why, per test set.")
@prompts_option
@unlabelled_options
@_engine_options
@_query_options
@_handle_errors
def compare(source: str, preset: str | None, encoders: tuple[str, ...], heads: tuple[str, ...],
            finetune: tuple[str, ...], budgets: str | None, seeds: int | None, test_sets: tuple[str, ...],
            out: str | None, jobs: int, cache_dir: str | None, no_plot: bool, adapt_prior: bool, prompts: str, engine: str,
            address: str | None, queries: tuple[str, ...], query_batch: int, query_refit: str, split_name: str,
            precision: str | None,
            max_length: int | None, pooling: str | None, long_text: str | None, **opts: Any) -> None:
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
      review-transfer compare rt --encoder minilm --query diverse --split validation --out reports/tune
      review-transfer compare rt --encoder minilm --finetune head --self-train --budgets 128,1000
      review-transfer compare rt --encoder "minilm[long=truncate]" --encoder minilm --budgets 128 --seeds 2

    \b
    --self-train adds METHOD+self-train for every method: the pool texts outside each budget sample are
    its unlabelled texts (their labels hidden from it), plus any --unlabelled SOURCE.
    """
    from pathlib import Path

    from pipeline.compare import PRESETS, run_compare
    from pipeline.data import parse_budgets
    from pipeline.heads import get_head
    from pipeline.prompts import resolve_prompts
    from pipeline.report import markdown, write_report
    from pipeline.spec import apply_flags

    prompt_set = resolve_prompts(prompts)
    base = PRESETS[preset] if preset else {"encoders": [], "heads": ["logreg"], "finetune": [], "budgets": "32,128,1000", "seeds": 3}
    encoders = encoders or tuple(e.replace("{source}", source) for e in base["encoders"])  # in-domain Word2Vec
    if not encoders:
        raise click.UsageError("give at least one --encoder (e.g. --encoder minilm) or a --preset.")
    self_train, unlabelled = pop_unlabelled(opts)
    if split_name != "test" and not queries:
        raise click.UsageError("--split validation is for --query runs; plain compare scores the test split.")
    if self_train is None and base.get("self_train") and engine == "local" and not queries:
        from pipeline.unlabelled.self_train import SelfTrainSettings

        self_train = SelfTrainSettings()
    if queries and (finetune or adapt_prior or engine != "local" or self_train):
        raise click.UsageError("--query runs frozen heads locally: drop --finetune, --adapt-prior, --self-train "
                               "and --engine ray.")
    # specs, heads and budgets fail before the data are read
    specs = apply_flags(list(encoders), precision=precision, max_length=max_length, pooling=pooling,
                        long_text=long_text)
    for head in heads:
        get_head(head)
    budget_list = parse_budgets(budgets or base["budgets"])
    ds = load_source(source, **opts)
    extra = {Path(p).stem: load_source(p, **opts) for p in test_sets}
    out_dir = Path(out or f"reports/{preset or 'compare'}")
    title = f"compare on {source}" + _transductive_note(ds, unlabelled, extra)
    if queries:  # simulated active learning (pipeline.active_compare), always beside balanced random
        from pipeline.active_compare import run_active_compare

        rows = run_active_compare(
            ds, encoders=[str(s) for s in specs], heads=heads or base["heads"],
            queries=("random", *(q for q in queries if q != "random")), k=query_batch, budgets=budget_list,
            seeds=seeds or base["seeds"], test_sets=extra, out=out_dir, cache_dir=cache_dir, jobs=jobs,
            source_options=opts, split_name=split_name, refit=query_refit)
    else:
        rows = run_compare(
            ds, encoders=specs, heads=heads or base["heads"], finetune=finetune or base["finetune"],
            budgets=budget_list, seeds=seeds or base["seeds"], test_sets=extra,
            out=out_dir, cache_dir=cache_dir, jobs=jobs, engine=engine, address=address, adapt_prior=adapt_prior,
            source_options=opts, self_train=self_train, unlabelled=unlabelled, prompts=prompt_set,
        )
    summary = write_report(rows, out_dir, title=title, with_plot=not no_plot)
    click.echo(markdown(summary, title=title).split("\n## Time")[0])
    click.echo(f"report: {out_dir / 'report.md'}  ({len(rows)} cells in {out_dir / 'results.jsonl'})")


# ---------------------------------------------------------------------------------------------- active learning
from pipeline.active_cli import label, suggest  # noqa: E402  (its commands use the helpers above)

main.add_command(suggest)
main.add_command(label)
adapt.callback = _handle_errors(adapt.callback)  # the command lives in pipeline/cli_unlabelled.py
main.add_command(adapt)
from pipeline.retarget_cli import retarget  # noqa: E402

main.add_command(retarget)
