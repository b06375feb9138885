"""The Faust app: one agent that wires Kafka to the shared `Runtime`.

The agent only moves data, in three steps that overlap:

* intake: each event of the stream (manual acks) goes into a `Batcher`
  (monitor/batching.py), stamped with its arrival;
* classify: as soon as the classifier has finished a batch, the next one is taken once it is
  due (full, or its oldest item has waited `max_wait_ms`) and classified (`Runtime.prepare`)
  on the classify thread;
* finish: each classified batch waits for the one before it, is stored (`Runtime.commit`) on
  the store thread, its dead letters and classified items are published, and only then are
  its events acked: offsets are committed only for messages whose rows are stored (or that
  were dead-lettered), in order. Model inference and SQL never run on the event loop.

So the classifier never waits for a batch timer or for SQL, and an item waits for its batch
at most `max_wait_ms` plus whatever is left of the batch being classified when it came in
(docs/performance.md). At most `MAX_BATCHES_IN_FLIGHT` batches are taken and not yet acked,
and the intake stops pulling while two batches' worth of items wait, so a slow database
holds the stream back instead of filling memory. A storage failure is retried with backoff
and the batch is never acked meanwhile: the worker pauses, it does not crash-loop and it
does not skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import faust
from sqlalchemy.exc import SQLAlchemyError

from monitor.batching import Batcher
from monitor.pipeline_types import Origin, RawMessage
from monitor.processing import BatchOutcome, PreparedBatch
from monitor.runtime import Runtime
from pipelines.kafka_fetch import bound_fetch_wait
from pipelines.kafka_producer import idempotent_producer
from pipelines.kafka_security import faust_credentials
from pipelines.progress import ProgressWatch
from pipelines.web import register_health_views

log = logging.getLogger(__name__)
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 15.0
MAX_BATCHES_IN_FLIGHT = 3
"""Taken and not yet acked: being classified, queued for the classifier, stored, published."""
CLASSIFY_QUEUE = 2
"""Batches with the classifier at once: the one it runs and a full one decoded behind it."""


def _raw_message(event: faust.types.EventT) -> RawMessage:
    message = event.message
    ts = datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp else None
    return RawMessage(message.value, Origin(message.topic, message.partition, message.offset, ts))


def _faust_datadir() -> Path:
    path = Path(tempfile.gettempdir()) / "finmon-faust"
    path.mkdir(exist_ok=True)
    return path


def create_app(
    runtime: Runtime, *, hooks: PipelineHooks | None = None, replication_factor: int = 1
) -> faust.App:
    """A Faust app for `runtime`, with the classify agent registered; its `finmon_progress`
    watches whether it progresses (pipelines/progress.py). `replication_factor` is for the
    topics Faust creates itself (`ensure_topics` says what the cluster allows)."""
    settings = runtime.settings
    kafka = settings.kafka
    hooks = hooks or PipelineHooks()
    app = faust.App(
        kafka.consumer_group,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers],
        broker_credentials=faust_credentials(kafka),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=kafka.input_partitions,
        topic_replication_factor=replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=kafka.session_timeout.total_seconds(),
        producer_acks=-1,
        web_enabled=settings.web.enabled,
        web_bind=settings.web.host,
        web_port=settings.web.port,
        web_in_thread=False,
        store="memory://",
        # Faust makes a data directory for table stores at start-up, `<group>-data` in the
        # current directory by default; finmon keeps no tables on disk (memory store).
        datadir=_faust_datadir(),
        autodiscover=False,
        broker_commit_every=200,
        broker_commit_interval=1.0,
        # A dead letter is the whole raw message (up to the ingest limit) plus its headers;
        # with the 1 MB default, sending a bigger one crashed the agent with its batch unacked.
        producer_max_request_size=settings.ingest.max_message_bytes + 64 * 1024,
    )
    bound_fetch_wait(app, kafka.fetch_max_wait_ms)
    idempotent_producer(app)
    progress = ProgressWatch(app, kafka.input_topic, kafka.stall_after.total_seconds()).attach()
    raw_topic = app.topic(kafka.input_topic, value_serializer="raw", key_serializer="raw")
    out_topic, dlq_topic = kafka.output_topic, kafka.dead_letter_topic  # created by ensure_topics
    classify_threads = ThreadPoolExecutor(
        max_workers=CLASSIFY_QUEUE, thread_name_prefix="finmon-classify"
    )
    store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finmon-store")
    max_batch = settings.batching.max_batch_size
    max_wait = settings.batching.max_wait_ms / 1000

    async def commit_until_stored(prepared: PreparedBatch, size: int) -> BatchOutcome:
        delay = RETRY_INITIAL_S
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await loop.run_in_executor(store_thread, runtime.commit, prepared)
            except SQLAlchemyError as exc:
                hooks.on_storage_error(exc)
                log.warning(
                    "storing a batch of %d failed (%s); retrying in %.1fs, offsets held",
                    size,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def publish(outcome: BatchOutcome) -> None:
        """Send dead letters and classified items, and wait until the broker has them all:
        a failed send raises, so the batch is not acked. The producer is called directly:
        Faust's `Topic.send` machinery cost half of the worker's publishing CPU."""
        producer = app.producer
        sent = [
            await producer.send(dlq_topic, None, letter.raw, None, None, letter.headers())
            for letter in outcome.dead_letters
        ]
        sent += [
            await producer.send(out_topic, item.item.id.encode(), item.to_json(), None, None, None)
            for item in outcome.classified
        ]
        await producer.flush()
        await asyncio.gather(*sent)

    async def run_batch(
        stream: faust.StreamT,
        queue: _Queue,
        events: list[faust.types.EventT],
        previous: asyncio.Task | None,
    ) -> None:
        messages = [_raw_message(e) for e in events]
        started = datetime.now(UTC)
        loop = asyncio.get_running_loop()
        try:
            prepared = await loop.run_in_executor(classify_threads, runtime.prepare, messages)
        finally:
            queue.classifying -= 1
            queue.changed.set()
        if previous is not None:
            await previous  # batches are stored, published and acked in order
        outcome = await commit_until_stored(prepared, len(messages))
        await publish(outcome)
        for event in events:
            await stream.ack(event)
        queue.in_flight.release()
        hooks.on_batch(messages, outcome, started)

    async def next_due(queue: _Queue) -> list[faust.types.EventT]:
        """Wait until the next batch may go to the classifier (monitor/batching.py): one is
        due, given the batches the classifier already has."""
        loop = asyncio.get_running_loop()
        while True:
            due = queue.batcher.due_at(queue.classifying)
            now = loop.time()
            if due is not None and due <= now:
                queue.room.set()
                return queue.batcher.take()
            queue.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.changed.wait(), None if due is None else due - now)

    async def dispatch(stream: faust.StreamT, queue: _Queue, tasks: asyncio.TaskGroup) -> None:
        """Hand out due batches; each is classified, then finished in order."""
        previous: asyncio.Task | None = None
        while True:
            await queue.in_flight.acquire()
            events = await next_due(queue)
            queue.classifying += 1
            previous = tasks.create_task(run_batch(stream, queue, events, previous))

    @app.agent(raw_topic, name="classify-news")
    async def classify_news(stream: faust.StreamT) -> None:
        # Stopping the agent cancels the group: batches not yet acked are redelivered after
        # a restart and stored once. An error in any batch ends the group, and so the agent.
        # Events one by one, not `take(within=...)`: take's timer restarts after every
        # batch it yields, and polling it often enough to stamp arrivals cost an idle
        # worker 6 % of a core (docs/performance.md).
        manual = stream.noack()
        queue = _Queue(Batcher(max_batch, max_wait, CLASSIFY_QUEUE))
        loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(dispatch(manual, queue, tasks))
            async for event in manual.events():
                if queue.batcher.add(event, loop.time()):
                    queue.changed.set()
                while len(queue.batcher) >= 2 * max_batch:
                    queue.room.clear()
                    await queue.room.wait()

    register_health_views(app, runtime, progress)
    app.finmon_runtime = runtime  # type: ignore[attr-defined]
    app.finmon_progress = progress  # type: ignore[attr-defined]
    return app


@dataclass(slots=True)
class _Queue:
    """The agent's batches between the intake and the classifier."""

    batcher: Batcher[faust.types.EventT]
    in_flight: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
    )
    classifying: int = 0
    """Batches handed to the classifier and not classified yet."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when an arrival moves the due time or a batch is classified: look again."""
    room: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a batch is taken: the intake may pull again."""


class PipelineHooks:
    """Observation points (metrics, tests) the agent calls; no-ops by default."""

    def on_batch(
        self, messages: list[RawMessage], outcome: BatchOutcome, started: datetime
    ) -> None:
        """Called after a batch is stored, published and acked."""

    def on_storage_error(self, exc: Exception) -> None:
        """Called each time storing a batch fails and will be retried."""
