"""Micro-batching: texts of concurrent requests go to the encoder in one call.

One task on the event loop takes waiting requests in arrival order, up to ``max_batch`` texts (a request
is never split), waiting at most ``max_wait`` seconds after the first of them for others to arrive,
and runs the model on them in one worker thread, so the loop keeps accepting requests meanwhile. While
the model is busy new requests queue up, and the next batch takes them at once: the wait bounds the
latency added when the server is idle, never a busy one. At most ``capacity`` texts may wait; a request
that would pass it is refused at once with :class:`Overloaded` (the app answers 503). If the model fails
on a batch, its requests are retried one by one, so only a request that fails alone gets the error.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np


class Overloaded(Exception):
    """More texts are waiting than the queue holds; retry later."""


@dataclass
class _Job:
    texts: Sequence[str]
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class BatchStats:
    """What one encoder call took: its texts and requests, and seconds spent in the model."""

    texts: int
    requests: int
    seconds: float


class MicroBatcher:
    """Batches calls of ``predict(texts) -> probabilities`` (one float per text) from concurrent requests."""

    def __init__(self, predict: Callable[[list[str]], np.ndarray], *, max_batch: int, max_wait: float,
                 capacity: int, on_batch: Callable[[BatchStats], None] | None = None):
        self.predict, self.max_batch, self.max_wait, self.capacity = predict, max_batch, max_wait, capacity
        self.on_batch = on_batch
        self._jobs: deque[_Job] = deque()
        self._waiting = 0  # texts in self._jobs
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")

    @property
    def waiting(self) -> int:
        """Texts queued for the encoder (not counting the batch it is on)."""
        return self._waiting

    def start(self) -> None:
        """Start the batching task on the running loop."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop the task and the worker thread."""
        while self._jobs:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def submit(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities for ``texts`` (in order), computed in a batch with other requests' texts."""
        if self._waiting + len(texts) > self.capacity:
            raise Overloaded(f"{self._waiting} texts are already waiting (the queue holds {self.capacity})")
        future = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(texts, future))
        self._waiting += len(texts)
        self._wake.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                self._wake.clear()
                await self._wake.wait()
                continue
            deadline = self._jobs[0].arrived + self.max_wait
            while self._waiting < self.max_batch and (left := deadline - time.monotonic()) > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            texts = [t for job in batch for t in job.texts]
            start = time.perf_counter()
            try:
                p = await loop.run_in_executor(self._executor, self.predict, texts)
            except Exception:  # the model failed: retry each request alone, so only the one at fault fails
                await self._one_by_one(batch)
                continue
            if self.on_batch is not None:
                self.on_batch(BatchStats(len(texts), len(batch), time.perf_counter() - start))
            offset = 0
            for job in batch:
                if not job.future.done():  # a client that went away leaves a cancelled future
                    job.future.set_result(p[offset:offset + len(job.texts)])
                offset += len(job.texts)

    async def _one_by_one(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        for job in batch:
            try:
                p = await loop.run_in_executor(self._executor, self.predict, list(job.texts))
            except Exception as e:
                if not job.future.done():
                    job.future.set_exception(e)
                continue
            if not job.future.done():
                job.future.set_result(p)

    def _take(self) -> list[_Job]:
        """Jobs from the front of the queue totalling at most ``max_batch`` texts (always at least one)."""
        batch = [self._jobs.popleft()]
        size = len(batch[0].texts)
        while self._jobs and size + len(self._jobs[0].texts) <= self.max_batch:
            size += len(self._jobs[0].texts)
            batch.append(self._jobs.popleft())
        self._waiting -= size
        return batch
