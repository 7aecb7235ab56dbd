"""Filling the store on a Ray cluster (:func:`ray_fill`, behind ``embed --engine ray`` and compare's Ray
engine, :mod:`pipeline.study.engines.ray`): the driver streams texts, keeps those the cache lacks and cuts them into shards of
``shard_size`` texts. A pool of :class:`EncodeWorker` actors (one model load each, one GPU each when
the cluster has GPUs) encodes shards; each worker writes its shard as its own HDF5 file under
``<cache>/<fingerprint>.incoming/`` (:meth:`Store.stage`, no lock, tmp + replace), and the driver
adopts each finished file into the store's shard table (:meth:`Store.adopt`), so
``EmbeddingCache.vectors`` and every reader see the rows with no change. A worker that dies mid-shard
(its process, or its whole node) or refuses to start (another encoder fingerprint) is dropped and its
shards are sent to the workers left; a retry rewrites the same staged file name and a file is adopted
once, after its task returned, so no row is duplicated or lost. With no worker left the run stops with
one line saying why; the rows adopted so far stay cached and a rerun encodes only the rest.

The cache directory must be on a filesystem every node sees (NFS, Lustre, a mounted bucket with
POSIX locks). Ray is an optional extra (``pip install 'review-transfer[ray]'``), imported only here,
inside functions.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import EngineError, MissingExtraError, OptionError
from pipeline.store.cache import SHARDS_BEFORE_MERGE, EmbeddingCache, EmbedReport, Store, file_meta, text_keys

SHARD_SIZE = 4096  # texts per Ray task: what a killed worker costs again, and the size of a staged file
IN_FLIGHT_PER_WORKER = 2  # shards queued per worker: keeps GPUs busy while bounding driver memory
MAX_RETRIES = 3


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("--engine ray needs Ray: pip install 'review-transfer[ray]'.") from None
    return ray


def connect(address: str | None = None) -> Any:
    """The ``ray`` module, connected: to ``address`` (e.g. ``auto`` or ``ray://head:10001``), else to
    ``$RAY_ADDRESS``, else to a new local instance; an already initialised Ray is reused. A plain
    ``ray.init()`` would instead join whatever cluster /tmp/ray last recorded, even one long stopped."""
    ray = require_ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


class EncodeWorker:
    """A Ray actor body: builds the encoder once, then encodes shards into staged files."""

    def __init__(self, spec: str, options: dict[str, Any], cache_dir: str, fingerprint: str) -> None:
        from pipeline.encoders import get_encoder

        self.encoder = get_encoder(spec, work_dir=cache_dir, **options)
        if self.encoder.fingerprint != fingerprint:
            raise EngineError(
                f"{spec}: this worker's encoder has fingerprint {self.encoder.fingerprint}, the driver's "
                f"{fingerprint}; install the same package and model versions on every node."
            )
        self.store = Store(cache_dir, fingerprint)
        self.meta = file_meta(self.encoder)

    def encode(self, name: str, texts: list[str]) -> tuple[str, dict[str, int]]:
        """Encode ``texts`` into the staged shard ``name``; returns its path and the encoder's counters."""
        vectors = self.encoder.encode(texts)
        path = self.store.stage(name, text_keys(texts), vectors, self.meta)
        return str(path), dict(self.encoder.last_stats)


def _worker_count(ray: Any, workers: int | None, device: str) -> tuple[int, float]:
    """(actors, GPUs per actor): one actor per GPU (at most) when the cluster has GPUs, else per CPU."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if device in ("auto", "cuda") else 0
    if gpus:
        return min(workers or gpus, gpus), 1.0
    return workers or max(1, int(resources.get("CPU", 1))), 0.0


@dataclass(frozen=True)
class Cluster:
    """Where and how :func:`ray_fill` encodes: at ``address`` (e.g. ``auto`` or ``ray://head:10001``; None:
    ``$RAY_ADDRESS``, else a new local Ray, as :func:`connect` reads it), on ``workers`` actors (None: one per GPU
    when the cluster has GPUs, else one per CPU), ``shard_size`` texts per task, each shard retried up to
    ``max_retries`` times, with actor body ``worker_cls`` (:class:`EncodeWorker` or a subclass)."""

    address: str | None = None
    workers: int | None = None
    shard_size: int = SHARD_SIZE
    max_retries: int = MAX_RETRIES
    worker_cls: type = EncodeWorker


def ray_fill(
    spec: str,
    batches: Iterable[Sequence[str]],
    cache_dir: str | Path | None = None,
    *,
    options: dict[str, Any] | None = None,
    cluster: Cluster = Cluster(),
    progress: bool | None = None,
) -> EmbedReport:
    """Cache the vectors of every text in ``batches`` for encoder ``spec``, encoding misses on Ray as ``cluster``
    says.

    ``options`` are :func:`get_encoder` keyword arguments (device, precision, ...). A shard whose worker dies is
    retried up to ``cluster.max_retries`` times. Returns counts and timings like :meth:`EmbeddingCache.fill`.
    """
    from pipeline.progress import progress_bar

    start = time.perf_counter()
    options = dict(options or {})
    cache = EmbeddingCache(cache_dir)
    encoder = _driver_encoder(spec, cache.dir, options, cluster.shard_size)
    store = cache.store(encoder.fingerprint)
    report = EmbedReport(spec, encoder.fingerprint, store.main)
    actors = _ShardPool(connect(cluster.address), spec, options, cache.dir, encoder.fingerprint, cluster)
    run = uuid.uuid4().hex[:12]
    queued: set[bytes] = set()  # keys of shards sent but not adopted yet
    bar = progress_bar(None, f"embed {spec} on {len(actors.actors)} Ray workers", "text", progress)

    def adopt(path: str, stats: dict[str, int], keys: list[bytes]) -> None:
        store.adopt(path)
        queued.difference_update(keys)
        for name, value in stats.items():
            report.stats[name] = report.stats.get(name, 0) + int(value)
        bar.update(len(keys))
        if store.shard_count() >= SHARDS_BEFORE_MERGE:
            store.compact()

    try:
        for n, texts in enumerate(_shards(batches, store, encoder.dim, queued, report, cluster.shard_size)):
            actors.submit(f"{run}-{n:08d}", texts)
            while actors.full:
                adopt(*actors.finished())
        while actors.tasks:
            adopt(*actors.finished())
    finally:
        bar.close()
        actors.close()
        _drop_staged(store, run)
    if actors.lost:
        print(f"embed {spec}: {len(actors.lost)} of {len(actors.actors)} Ray workers lost, their shards redone on "
              f"the workers left: {'; '.join(dict.fromkeys(actors.lost))}", file=sys.stderr)
    if store.has_shards():
        store.compact()
    report.seconds = time.perf_counter() - start
    return report


def _driver_encoder(spec: str, cache_dir: Path, options: dict[str, Any], shard_size: int) -> Any:
    """The driver's encoder of ``spec``, for its fingerprint and dim (it loads the model), once the
    arguments are checked: one encoder (not ``A+B``), shards of at least one text."""
    from pipeline.encoders import get_encoder
    from pipeline.encoders.spec import parse_spec

    if shard_size < 1:
        raise OptionError(f"shard_size must be at least 1, got {shard_size}.")
    parts = parse_spec(spec).parts
    if parts:
        raise OptionError(f"{spec}: fill each part ({', '.join(map(str, parts))}) on its own.")
    return get_encoder(spec, work_dir=cache_dir, **options)


class _ShardPool:
    """Encoding actors and the shards in flight on them: a shard goes to the least busy live actor.

    Retries are the driver's, not Ray's: an actor whose task fails (its process or its whole node died, or it
    refused to start) is dropped and its shards go to the actors left, each shard at most ``max_retries`` more
    times. Ray's own actor restarts would wait for a free CPU when a node is lost, for ever on a full cluster.
    """

    def __init__(self, ray: Any, spec: str, options: dict[str, Any], cache_dir: Path, fingerprint: str,
                 cluster: Cluster) -> None:
        self.ray, self.spec, self.max_retries = ray, spec, cluster.max_retries
        n_workers, gpus = _worker_count(ray, cluster.workers, options.get("device", "auto"))
        actor_cls = ray.remote(num_gpus=gpus, num_cpus=0 if gpus else 1, max_restarts=0,
                               max_task_retries=0)(cluster.worker_cls)
        self.actors = [actor_cls.remote(spec, options, str(cache_dir), fingerprint) for _ in range(n_workers)]
        self.live = set(range(n_workers))
        self.lost: list[str] = []  # why each dropped actor was dropped, one line each
        self.tasks: dict[Any, tuple[int, str, list[str], int]] = {}  # task -> (actor, shard name, texts, tries)

    @property
    def full(self) -> bool:
        """Whether enough shards are queued to keep every live actor busy."""
        return len(self.tasks) >= IN_FLIGHT_PER_WORKER * len(self.live)

    def submit(self, name: str, texts: list[str], tries: int = 0) -> None:
        """Send shard ``name`` to the live actor with the fewest shards in flight."""
        busy = dict.fromkeys(self.live, 0)
        for w, *_ in self.tasks.values():
            if w in busy:
                busy[w] += 1
        w = min(busy, key=lambda k: (busy[k], k))
        self.tasks[self.actors[w].encode.remote(name, texts)] = (w, name, texts, tries)

    def finished(self) -> tuple[str, dict[str, int], list[bytes]]:
        """(staged file, encoder counters, keys) of the next shard to finish; EngineError when a shard failed
        ``max_retries`` retries or no actor is left."""
        while True:
            (done,), _ = self.ray.wait(list(self.tasks), num_returns=1)
            w, name, texts, tries = self.tasks.pop(done)
            try:
                path, stats = self.ray.get(done)
                return path, stats, text_keys(texts).tolist()
            except self.ray.exceptions.RayError as e:
                cause = _cause(e)
                if isinstance(e, self.ray.exceptions.RayActorError):  # the actor is gone (or never started)
                    self._drop(w, cause)
                if tries >= self.max_retries or not self.live:
                    why = f"no Ray worker left ({len(self.actors)} started)" if not self.live else \
                        f"a shard of {len(texts)} texts failed after {self.max_retries} retries"
                    raise EngineError(f"{self.spec}: {why}: {'; '.join(dict.fromkeys([*self.lost, cause]))}. Rows "
                                      "done so far are cached, rerun to resume.") from None
                self.submit(name, texts, tries + 1)

    def _drop(self, w: int, cause: str) -> None:
        """Stop sending work to actor ``w``, remembering why (one line)."""
        if w in self.live:
            self.live.discard(w)
            self.lost.append(cause)
            with contextlib.suppress(Exception):
                self.ray.kill(self.actors[w])

    def close(self) -> None:
        """Stop the actors."""
        for handle in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(handle)


def _cause(error: Exception) -> str:
    """One line saying why a Ray task failed: the worker's own exception line when Ray's message carries one
    (e.g. a refused encoder fingerprint), else the kind of failure (worker process or node died)."""
    own = [line.strip() for line in str(error).splitlines() if re.match(r"\s*(\w+\.)*\w+(Error|Exception): ", line)]
    own = [line for line in own if not line.startswith(("ray.", "Ray"))]
    if own:
        return own[-1]
    return f"{type(error).__name__}: a worker process or its node died"


def _drop_staged(store: Store, run: str) -> None:
    """Remove the staged files of ``run`` that were never adopted, and the staging folder when empty."""
    for leftover in store.incoming.glob(f"{run}-*"):
        leftover.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        store.incoming.rmdir()  # only when empty: another run may be staging there


def _shards(batches: Iterable[Sequence[str]], store: Store, dim: int, queued: set[bytes], report: EmbedReport,
            shard_size: int) -> Iterator[list[str]]:
    """Lists of ``shard_size`` texts neither cached nor queued, counting texts, hits and misses in ``report``.

    Each batch is checked against the store when it is read; texts queued by earlier batches (in
    ``queued`` until adopted) count as hits. Longest texts first within a batch, to cut padding.
    """
    shard: list[str] = []
    for batch in batches:
        keys = text_keys(batch)
        _, first = np.unique(keys, return_index=True)
        todo = first[store.missing(keys[first], dim)] if len(first) else first
        todo = [i for i in todo if keys[i] not in queued]
        todo.sort(key=lambda i: -len(batch[i]))
        queued.update(keys[todo].tolist())
        report.texts += len(batch)
        report.unique += len(first)
        report.hits += len(first) - len(todo)
        report.misses += len(todo)
        for i in todo:
            shard.append(batch[i])
            if len(shard) == shard_size:
                yield shard
                shard = []
    if shard:
        yield shard
