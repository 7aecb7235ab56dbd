"""The service's Prometheus metrics (``prometheus-client``), served as text at ``/metrics``.

With one worker the metrics live in the process's own registry. With several (``--workers N``) each
worker is a separate process, so ``serve`` sets ``$PROMETHEUS_MULTIPROC_DIR`` to a fresh folder before
starting them: every worker writes its samples there and ``/metrics``, whichever worker answers it,
reports the sum over all workers (counters and histograms summed; the queue gauge summed over the
workers alive).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
ROUTES = ("/", "/v1/predict", "/v1/model", "/healthz", "/metrics", "/docs", "/openapi.json")


def multiprocess() -> bool:
    """Whether samples go to ``$PROMETHEUS_MULTIPROC_DIR`` (several workers)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """Request counts and latencies by route and status, texts predicted, batch sizes, queue, refusals."""

    def __init__(self) -> None:
        # in multiprocess mode the samples go to files; the collector of /metrics reads them all
        self.registry = None if multiprocess() else CollectorRegistry()
        reg: Any = {"registry": self.registry}
        self.requests = Counter("review_transfer_requests", "HTTP requests answered, by route and status code",
                                ["route", "status"], **reg)
        self.latency = Histogram("review_transfer_request_seconds", "Time to answer a request, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, **reg)
        self.texts = Counter("review_transfer_texts_predicted", "Texts given a label", **reg)
        self.batch_texts = Histogram("review_transfer_batch_texts", "Texts per encoder call (micro-batch size)",
                                     buckets=BATCH_BUCKETS, **reg)
        self.batch_seconds = Histogram("review_transfer_batch_seconds", "Time of one encoder + head call",
                                       buckets=LATENCY_BUCKETS, **reg)
        self.queued = Gauge("review_transfer_queued_texts", "Texts waiting for the encoder",
                            multiprocess_mode="livesum", **reg)
        self.overloaded = Counter("review_transfer_overloaded", "Requests refused with 503: the queue was full", **reg)

    def observe(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request (unknown paths are counted as ``other``: bounded label values)."""
        route = path if path in ROUTES else "other"
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        registry = self.registry
        if registry is None:
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    @staticmethod
    def worker_exit() -> None:
        """Drop this worker's live gauges from the shared samples (multiprocess mode only)."""
        if multiprocess():
            from prometheus_client import multiprocess as mp

            mp.mark_process_dead(os.getpid())
