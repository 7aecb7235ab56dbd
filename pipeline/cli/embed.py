"""Stage one on the command line: ``embed`` (texts into the embedding cache) and the ``cache`` group."""

from __future__ import annotations

from typing import Any

import click

from pipeline.encoders.spec import DEFAULT_ENCODER
from pipeline.cli.options import (
    ENCODER_HELP, _backend_options, _cache_dir_option, _encoder_flags, _engine_options, _handle_errors, source_options,
)


@click.command(short_help="Encode the texts of SOURCE once into the embedding cache.")
@click.argument("source")
@source_options
@click.option("--encoder", "encoders", multiple=True, default=(DEFAULT_ENCODER,), show_default=True,
              help=ENCODER_HELP + " Repeatable.")
@_cache_dir_option
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where transformers run.")
@_encoder_flags
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Texts per forward pass.  [default: torch 128 on CPU, 256 on GPU; onnx/openvino exports 64]")
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
          backend: str | None, quantize: str | None, min_cosine: float, engine: str, address: str | None, workers: int | None,
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
    from pipeline.encoders.spec import EncoderOptions
    from pipeline.store.embed import EmbedJob, EmbedRun, embed_source

    job = EmbedJob(source, EncoderOptions(encoders, long=long_text, max_length=max_length, precision=precision,
                                          pooling=pooling, cache_dir=cache_dir),
                   backend=backend, quantize=quantize, min_cosine=min_cosine, unlabelled=unlabelled, source_options=opts,
                   run=EmbedRun(device=device, batch_size=batch_size, chunk_size=chunk_size, engine=engine,
                                address=address, workers=workers, shard_size=shard_size))
    for line, to_stderr in embed_source(job):
        click.echo(line, err=to_stderr)


@click.group("cache")
def cache_group() -> None:
    """List, inspect, check or delete embedding cache files.

    \b
    Examples:
      review-transfer cache ls                    (one line per file: encoder, rows, size; --cache-dir DIR elsewhere)
      review-transfer cache info 05ace6f7         (a unique prefix of a fingerprint is enough)
      review-transfer cache verify                (read every row; exit 1 if a file is damaged)
      review-transfer cache rm 05ace6f7           (rebuilt by the next embed)
    """


@cache_group.command("ls")
@_cache_dir_option
@_handle_errors
def cache_ls(cache_dir: str | None) -> None:
    """One line per cache file: fingerprint, encoder spec, dim, rows, size, last change."""
    import time

    from pipeline.store.cache import CacheError, derived_files, list_stores

    stores = list_stores(cache_dir)
    if not stores:
        click.echo("no cache files")
    summaries = []
    for store in stores:
        try:
            summaries.append((store, store.summary()))
        except CacheError:
            summaries.append((store, None))
    width = max([20, *(len(s["spec"]) for _, s in summaries if s)])  # long specs keep the columns aligned
    for store, s in summaries:
        if s is None:
            click.echo(f"{store.fingerprint}  UNREADABLE  (run: review-transfer cache verify {store.fingerprint})")
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["modified"]))
        settings = ",".join(str(s["params"][k]) for k in ("pooling", "precision", "max_length") if k in s["params"])
        shards = "".join(f" +{s[part]} {part}" for part in ("segments", "shards") if s[part])
        click.echo(f"{s['fingerprint']}  {s['spec']:<{width}} {settings:<16} {s['dim']:>4}-d {s['rows']:>9,} rows "
                   f"{s['bytes'] / 1e6:>8.1f} MB  {when}{shards}")
    derived = derived_files(cache_dir)
    if derived:
        click.echo("made once and reused (exports, converted models; deleting one costs a re-export on next use):")
    for name, size, changed, what in derived:
        click.echo(f"  {name:<52} {size / 1e6:>8.1f} MB  {time.strftime('%Y-%m-%d %H:%M', time.localtime(changed))}"
                   + (f"  {what}" if what else ""))


@cache_group.command("info")
@click.argument("fingerprint")
@_cache_dir_option
@_handle_errors
def cache_info(fingerprint: str, cache_dir: str | None) -> None:
    """Everything about one cache file (FINGERPRINT, a unique prefix of it, or the .h5 path)."""
    import json

    from pipeline.store.cache import find_store

    s = find_store(cache_dir, fingerprint).summary()
    for name in ("fingerprint", "spec", "dim", "rows", "segments", "shards", "bytes", "path"):
        click.echo(f"{name:<12} {s[name]}")
    click.echo(f"{'encoder':<12} {json.dumps(s['params'], sort_keys=True)}")


@cache_group.command("verify")
@click.argument("fingerprints", nargs=-1)
@_cache_dir_option
@_handle_errors
def cache_verify(fingerprints: tuple[str, ...], cache_dir: str | None) -> None:
    """Read every row of the given cache files (default: all); exit 1 if any is truncated or corrupted."""
    from pipeline.store.cache import find_store, list_stores

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
    if not fingerprints:
        from pipeline.encoders.multilingual_port import DIGESTS, wrong_digests
        from pipeline.paths import cache_dir_or_default

        work_dir = cache_dir_or_default(cache_dir)
        wrong = wrong_digests(work_dir)
        if (work_dir / "models" / DIGESTS).exists():
            click.echo(f"{'WRONG' if wrong else 'ok':<9} models/{DIGESTS}")
        for line in wrong:
            click.echo(f"  {line}")
        if wrong and not bad:
            raise click.ClickException(f"models/{DIGESTS} records a wrong sha256; delete it as shown above.")
    if bad:
        raise click.ClickException(f"{bad} of {len(stores)} cache files are damaged; rebuild them as shown above.")


@cache_group.command("rm")
@click.argument("fingerprints", nargs=-1)
@click.option("--all", "remove_all", is_flag=True, help="Remove every cache file.")
@_cache_dir_option
@_handle_errors
def cache_rm(fingerprints: tuple[str, ...], remove_all: bool, cache_dir: str | None) -> None:
    """Delete the cache files of FINGERPRINTS (or --all), and the exports and converted models made for their
    encoders alone (no store left uses them); all are made again on next use."""
    from pipeline.store.cache import find_store, list_stores
    from pipeline.store.derived import remove_stores

    if bool(fingerprints) == remove_all:
        raise click.UsageError("give FINGERPRINT arguments or --all (not both).")
    stores = list_stores(cache_dir) if remove_all else [find_store(cache_dir, f) for f in fingerprints]
    for line in remove_stores(stores, cache_dir):
        click.echo(line)
