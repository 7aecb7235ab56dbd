"""The ``serve`` command: a bundle behind an HTTP API (the service itself is :mod:`pipeline.serve`)."""

from __future__ import annotations

import click

from pipeline.cli.options import _cache_dir_option, _handle_errors, _long_text_options, _trust_options


@click.command(short_help="Serve a bundle over HTTP (POST /v1/predict, /metrics).")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Other than loopback, anyone who can reach it can use the model: "
                   "set a token (--token-file).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port; 0 picks a free one.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes, each with its own copy of the model, sharing the port.")
@click.option("--token-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Require 'Authorization: Bearer TOKEN' (TOKEN: the file's first line; or set "
                   "$REVIEW_TRANSFER_SERVE_TOKEN). /healthz and /docs stay open.")
@click.option("--allow-origin", "origins", multiple=True,
              help="Let web pages from this origin (e.g. http://localhost:3000) call the service from a browser "
                   "(CORS); repeat for more. Without it a browser refuses them.")
@click.option("--max-texts", type=click.IntRange(min=1), default=256, show_default=True, help="Most texts per request (more: 413).")
@click.option("--max-body", type=click.IntRange(min=1), default=1 << 20, show_default=True, help="Most bytes per request body (more: 413).")
@click.option("--max-batch", type=click.IntRange(min=1), default=256, show_default=True,
              help="Most texts of concurrent requests encoded in one call.")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="How long an idle server waits for more requests to batch with the first.")
@click.option("--queue-texts", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Most texts waiting for the encoder; requests beyond it get 503 at once.")
@_long_text_options
@_trust_options
@_cache_dir_option
@_handle_errors
def serve(bundle: str, host: str, port: int, workers: int, token_file: str | None, origins: tuple[str, ...],
          max_texts: int, max_body: int,
          max_batch: int, max_wait_ms: float, queue_texts: int, long_text: str | None, max_length: int | None,
          encoder_path: str | None, trust_encoder: bool, allow_legacy: bool, cache_dir: str | None) -> None:
    """Serve BUNDLE over HTTP: POST /v1/predict {"texts": [...]} -> a label and p_positive per text.

    The bundle is verified once at start, under the rules of `predict`. Also GET /v1/model (the
    manifest summary), /healthz, /metrics (Prometheus) and /docs (OpenAPI). SIGTERM or Ctrl-C finishes
    the requests in flight, then exits.

    \b
    Examples:
      review-transfer serve models/rt-minilm-logreg-ball-s0
      curl -s localhost:8000/v1/predict -H 'Content-Type: application/json' -d '{"texts": ["A triumph."]}'
      review-transfer serve models/rt-minilm-logreg-ball-s0 --allow-origin http://localhost:3000   (a web page's calls)
    """
    try:
        from pipeline.serve.config import BundleOptions, Limits, ServeConfig, read_token
        from pipeline.serve.run import serve as run_server
    except ImportError as e:
        from pipeline import MissingExtraError

        raise MissingExtraError(f"serve needs FastAPI, uvicorn and prometheus-client ({e}): "
                                "pip install 'review-transfer[serve]'") from None
    config = ServeConfig(
        bundle=BundleOptions(bundle, cache_dir, long_text, max_length, encoder_path, trust_encoder, allow_legacy),
        limits=Limits(max_texts, max_body, max_batch, max_wait_ms, queue_texts),
        token=read_token(token_file), host=host, port=port, workers=workers, origins=origins)
    run_server(config, echo=lambda line: click.echo(line, err=True))
