"""The worker's batch pipeline: ordering, retries, publishing, acks and backpressure, without
Faust.

Events flow through three overlapping steps:

* intake: each event of the stream goes into a `Batcher` (monitor/batching.py), stamped with
  its arrival;
* classify: as soon as the classifier has finished a batch, the next one is taken once it is
  due (full, or its oldest item has waited `max_wait_s`) and classified on a classify thread;
* finish: each classified batch waits for the one before it, is stored on the store thread,
  published, and only then are its events acked: an event is acked only once its row is
  stored (or it was dead-lettered) and published, and batches are acked in the order they
  were taken. Model inference and SQL never run on the event loop.

So the classifier never waits for a batch timer or for SQL, and an item waits for its batch
at most `max_wait_s` plus whatever is left of the batch being classified when it came in.
At most `max_in_flight` batches are taken and not yet acked, and the intake stops pulling
while two batches' worth of events wait, so a slow database holds the stream back instead
of filling memory. A retryable storage failure is retried with capped exponential backoff
and the batch is never acked meanwhile: the pipeline pauses, it neither crash-loops nor
skips. Any other failure (a publish that fails, a store error that is not retryable) ends
`run` with that error and leaves the batch and every later one unacked, for redelivery.

All I/O comes in as callables (classify, store, publish, ack), so the whole contract is
tested with fakes on a plain event loop (tests/pipelines/test_batch.py); the Faust agent
(pipelines/app.py) only adapts its stream to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

from monitor.batching import Batcher
from monitor.pipeline_types import RawMessage
from monitor.processing import BatchOutcome

log = logging.getLogger(__name__)

E = TypeVar("E")
"""An event of the input stream (a Faust event in the worker)."""
B = TypeVar("B")
"""A classified batch, as `classify` returns it and `store` takes it."""


@dataclass(frozen=True, slots=True)
class PipelineLimits:
    """How big batches get, how long an item waits, and how far the pipeline runs ahead."""

    max_batch_size: int
    max_wait_s: float
    max_in_flight: int = 3
    """Batches taken and not yet acked: being classified, queued for the classifier,
    stored, published."""
    classify_queue: int = 2
    """Batches with the classifier at once: the one it runs and a full one decoded behind
    it."""
    retry_initial_s: float = 0.5
    retry_max_s: float = 15.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.classify_queue < 1:
            raise ValueError("max_in_flight and classify_queue must be at least 1")
        if self.retry_initial_s <= 0 or self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry delays must be positive, the maximum not below the first")


class PipelineHooks:
    """Observation points (metrics, tests) the pipeline calls; no-ops by default."""

    def on_batch(
        self, messages: Sequence[RawMessage], outcome: BatchOutcome, started: datetime
    ) -> None:
        """Called after a batch is stored, published and acked."""

    def on_storage_error(self, exc: Exception) -> None:
        """Called each time storing a batch fails and will be retried."""


@dataclass(slots=True)
class _Queue(Generic[E]):
    """The batches between the intake and the classifier."""

    batcher: Batcher[E]
    in_flight: asyncio.Semaphore
    classifying: int = 0
    """Batches handed to the classifier and not classified yet."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when an arrival moves the due time or a batch is classified: look again."""
    room: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a batch is taken: the intake may pull again."""
    ended: bool = False
    """The stream has ended: no event will arrive any more."""


class BatchPipeline(Generic[E, B]):
    """One run of the batch pipeline over a stream of events; see the module docstring.

    `classify` and `store` are synchronous and run in threads (`store` raises one of
    `retryable` when it may be retried with the same batch, nothing having been stored);
    `publish` and `ack` are coroutines on the event loop; `message_of` reads an event's raw
    message. A pipeline object serves one `run`."""

    def __init__(
        self,
        *,
        classify: Callable[[list[RawMessage]], B],
        store: Callable[[B], BatchOutcome],
        publish: Callable[[BatchOutcome], Awaitable[None]],
        ack: Callable[[Sequence[E]], Awaitable[None]],
        message_of: Callable[[E], RawMessage],
        limits: PipelineLimits,
        retryable: tuple[type[Exception], ...],
        hooks: PipelineHooks | None = None,
    ) -> None:
        self._classify = classify
        self._store = store
        self._publish = publish
        self._ack = ack
        self._message_of = message_of
        self.limits = limits
        self._retryable = retryable
        self._hooks = hooks or PipelineHooks()
        self._classify_threads = ThreadPoolExecutor(
            max_workers=limits.classify_queue, thread_name_prefix="finmon-classify"
        )
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finmon-store")

    async def run(self, events: AsyncIterable[E]) -> None:
        """Process `events` until the stream ends (every batch taken is then finished) or
        this coroutine is cancelled (batches not yet acked stay unacked). An error in any
        batch ends the run with that error; later batches are not acked."""
        limits = self.limits
        queue: _Queue[E] = _Queue(
            Batcher(limits.max_batch_size, limits.max_wait_s, limits.classify_queue),
            asyncio.Semaphore(limits.max_in_flight),
        )
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._dispatch(queue, tasks))
                async for event in events:
                    if queue.batcher.add(event, loop.time()):
                        queue.changed.set()
                    while len(queue.batcher) >= 2 * limits.max_batch_size:
                        queue.room.clear()
                        await queue.room.wait()
                queue.ended = True  # the group now waits for every batch taken to finish
                queue.changed.set()
        finally:
            # a thread still running a step cannot be stopped: its result is dropped
            self._classify_threads.shutdown(wait=False, cancel_futures=True)
            self._store_thread.shutdown(wait=False, cancel_futures=True)

    async def _dispatch(self, queue: _Queue[E], tasks: asyncio.TaskGroup) -> None:
        """Hand out due batches; each is classified, then finished in order. Returns once
        the stream has ended and every event was handed out."""
        previous: asyncio.Task[None] | None = None
        while True:
            await queue.in_flight.acquire()
            events = await self._next_due(queue)
            if not events:
                return
            queue.classifying += 1
            previous = tasks.create_task(self._run_batch(queue, events, previous))

    async def _next_due(self, queue: _Queue[E]) -> list[E]:
        """Wait until the next batch may go to the classifier (monitor/batching.py): one is
        due, given the batches the classifier already has; once the stream has ended, what
        is left is due as soon as the classifier has room (empty: nothing is left)."""
        loop = asyncio.get_running_loop()
        while True:
            if queue.ended and queue.classifying < self.limits.classify_queue:
                return queue.batcher.take()
            due = queue.batcher.due_at(queue.classifying)
            now = loop.time()
            if due is not None and due <= now:
                queue.room.set()
                return queue.batcher.take()
            queue.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.changed.wait(), None if due is None else due - now)

    async def _run_batch(
        self, queue: _Queue[E], events: list[E], previous: asyncio.Task[None] | None
    ) -> None:
        messages = [self._message_of(e) for e in events]
        started = datetime.now(UTC)
        loop = asyncio.get_running_loop()
        try:
            classified = await loop.run_in_executor(
                self._classify_threads, self._classify, messages
            )
        finally:
            queue.classifying -= 1
            queue.changed.set()
        if previous is not None:
            await previous  # batches are stored, published and acked in order
        outcome = await self._store_until_stored(classified, len(messages))
        await self._publish(outcome)
        await self._ack(events)
        queue.in_flight.release()
        self._hooks.on_batch(messages, outcome, started)

    async def _store_until_stored(self, classified: B, size: int) -> BatchOutcome:
        delay = self.limits.retry_initial_s
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await loop.run_in_executor(self._store_thread, self._store, classified)
            except self._retryable as exc:
                self._hooks.on_storage_error(exc)
                log.warning(
                    "storing a batch of %d failed (%s); retrying in %.1fs, offsets held",
                    size,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.limits.retry_max_s)
