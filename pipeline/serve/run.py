"""Running the service: verify the bundle, listen, and hand the socket to uvicorn (one process, or
``workers`` processes sharing it).

The bundle is loaded and verified before anything listens, so a bundle that fails a check (see
:meth:`pipeline.bundle.bundle.Bundle.load`) stops ``serve`` with its one-line error and no port is ever
opened. With several workers each process loads its own copy (checked again, under the same rules)
from the config this process leaves in ``$REVIEW_TRANSFER_SERVE_CONFIG``. SIGTERM or Ctrl-C stops
accepting connections, lets the requests in flight finish (up to ``grace_s`` seconds), then exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable

from pipeline import OptionError
from pipeline.serve.config import CONFIG_ENV, ServeConfig
from pipeline.guards import LOOPBACK_HOSTS
from pipeline.serve.metrics import MULTIPROC_ENV
from pipeline.serve.model import ServedModel

BACKLOG = 2048  # connections made while the model loads or the workers are busy wait here


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one), or OptionError saying why not."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP (without it each
    # answer on a keep-alive connection waits ~40 ms for the client's delayed ACK)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OptionError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); choose another "
                          "port (0 picks a free one) or host.") from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(config: ServeConfig, echo: Callable[[str], None] = print) -> None:
    """Serve ``config.bundle`` until SIGTERM or Ctrl-C; ``echo`` gets the address once it listens."""
    import uvicorn

    config.limits.check()
    config.check()
    if config.workers < 1:
        raise OptionError(f"--workers must be at least 1, got {config.workers}.")
    model = ServedModel.load(config.bundle)  # BundleError for a bundle that fails any check: nothing listens
    sock = listen(config.host, config.port)
    # until uvicorn takes over the signals nothing is in flight: SIGTERM or Ctrl-C just exits (status 0);
    # uvicorn raises the signal that stopped it again once it has shut down gracefully: the same exit
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit)
    port = sock.getsockname()[1]
    base = url(config.host, port)
    if config.host not in LOOPBACK_HOSTS:
        echo(f"warning: listening on {config.host}: anyone who can reach it can use the model"
             + ("" if config.token else " (no token set: see --token-file)"))
    echo(f"serving {model.name} at {base}/v1/predict (docs {base}/docs, {config.workers} worker(s)); "
         "SIGTERM or Ctrl-C stops it after the requests in flight")
    options = dict(log_level="warning", access_log=False, server_header=False, lifespan="on",
                   timeout_graceful_shutdown=config.grace_s)
    if config.workers == 1:
        from pipeline.serve.app import create_app

        server = uvicorn.Server(uvicorn.Config(create_app(model, config), **options))
        server.run(sockets=[sock])
        return
    del model  # each worker loads its own
    from uvicorn.supervisors import Multiprocess

    metrics_dir = tempfile.mkdtemp(prefix="review-transfer-metrics-")
    os.environ[CONFIG_ENV] = config.to_json()
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        uv = uvicorn.Config("pipeline.serve.app:app_from_env", factory=True, workers=config.workers, **options)
        Multiprocess(uv, sockets=[sock]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
