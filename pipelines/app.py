"""The Faust app: one agent that wires Kafka to the shared `Runtime`.

The agent only moves data, in three steps that overlap:

* intake: `noack_take` polls the stream every `INTAKE_POLL_S` into a `Batcher`
  (monitor/batching.py), which stamps each item with its arrival;
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
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import faust
from sqlalchemy.exc import SQLAlchemyError

from monitor.batching import Batcher
from monitor.pipeline_types import Origin, RawMessage
from monitor.processing import BatchOutcome, PreparedBatch
from monitor.runtime import Runtime
from pipelines.kafka_security import faust_credentials
from pipelines.web import register_health_views

log = logging.getLogger(__name__)
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 15.0
MAX_BATCHES_IN_FLIGHT = 3
"""One being classified, two being stored or published."""
INTAKE_POLL_S = 0.01
"""How often the intake hands what `take` buffered to the batcher: an item's arrival is
stamped up to this late, and its batch can be cut up to this late."""


def _raw_message(event: faust.types.EventT) -> RawMessage:
    message = event.message
    ts = datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp else None
    return RawMessage(message.value, Origin(message.topic, message.partition, message.offset, ts))


def create_app(runtime: Runtime, *, hooks: PipelineHooks | None = None) -> faust.App:
    """A Faust app for `runtime`, with the classify agent registered."""
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
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=settings.web.enabled,
        web_bind=settings.web.host,
        web_port=settings.web.port,
        web_in_thread=False,
        store="memory://",
        autodiscover=False,
        broker_commit_every=200,
        broker_commit_interval=1.0,
        # A dead letter is the whole raw message (up to the ingest limit) plus its headers;
        # with the 1 MB default, sending a bigger one crashed the agent with its batch unacked.
        producer_max_request_size=settings.ingest.max_message_bytes + 64 * 1024,
    )
    raw_topic = app.topic(kafka.input_topic, value_serializer="raw", key_serializer="raw")
    out_topic, dlq_topic = kafka.output_topic, kafka.dead_letter_topic  # created by ensure_topics
    classify_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finmon-classify")
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

    async def finish_batch(
        stream: faust.StreamT,
        events: list[faust.types.EventT],
        messages: list[RawMessage],
        prepared: PreparedBatch,
        started: datetime,
        previous: asyncio.Task | None,
        in_flight: asyncio.Semaphore,
    ) -> None:
        if previous is not None:
            await previous  # batches are stored, published and acked in order
        outcome = await commit_until_stored(prepared, len(messages))
        await publish(outcome)
        for event in events:
            await stream.ack(event)
        in_flight.release()
        hooks.on_batch(messages, outcome, started)

    async def next_due(batcher: Batcher, arrived: asyncio.Event) -> list[faust.types.EventT]:
        """Wait until the next batch is due (full, or its oldest item waited max_wait)."""
        loop = asyncio.get_running_loop()
        while True:
            due, now = batcher.due_at(), loop.time()
            if due is not None and due <= now:
                return batcher.take()
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), None if due is None else due - now)

    async def classify_batches(
        stream: faust.StreamT,
        batcher: Batcher,
        arrived: asyncio.Event,
        room: asyncio.Event,
        tasks: asyncio.TaskGroup,
    ) -> None:
        """Classify one due batch after another; each goes on to be finished in order."""
        loop = asyncio.get_running_loop()
        in_flight = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        previous: asyncio.Task | None = None
        while True:
            await in_flight.acquire()
            events = await next_due(batcher, arrived)
            room.set()
            messages = [_raw_message(e) for e in events]
            started = datetime.now(UTC)
            prepared = await loop.run_in_executor(classify_thread, runtime.prepare, messages)
            previous = tasks.create_task(
                finish_batch(stream, events, messages, prepared, started, previous, in_flight)
            )

    @app.agent(raw_topic, name="classify-news")
    async def classify_news(stream: faust.StreamT) -> None:
        # Stopping the agent cancels the group: batches not yet acked are redelivered after
        # a restart and stored once. An error in any batch ends the group, and so the agent.
        batcher: Batcher[faust.types.EventT] = Batcher(max_batch, max_wait)
        arrived, room = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(classify_batches(stream, batcher, arrived, room, tasks))
            async for events in stream.noack_take(max_batch, within=INTAKE_POLL_S):
                batcher.add(events, loop.time())
                arrived.set()
                while len(batcher) >= 2 * max_batch:
                    room.clear()
                    await room.wait()

    register_health_views(app, runtime)
    app.finmon_runtime = runtime  # type: ignore[attr-defined]
    return app


class PipelineHooks:
    """Observation points (metrics, tests) the agent calls; no-ops by default."""

    def on_batch(
        self, messages: list[RawMessage], outcome: BatchOutcome, started: datetime
    ) -> None:
        """Called after a batch is stored, published and acked."""

    def on_storage_error(self, exc: Exception) -> None:
        """Called each time storing a batch fails and will be retried."""
