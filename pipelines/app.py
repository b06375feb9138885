"""The Faust app: one agent that wires Kafka to the shared `Runtime`.

The agent only moves data. Each batch of raw events becomes a task that classifies it
(`Runtime.prepare`) on the classify thread, waits for the previous batch's task, stores it
(`Runtime.commit`) on the store thread, publishes dead letters and classified items, and
only then acks the events: offsets are committed only for messages whose rows are stored
(or that were dead-lettered), in order. Model inference and SQL never run on the event loop.

Two batches are in flight at most: batch k+1 is classified while batch k is stored and
published, and `take` keeps buffering (its max-wait timer running) meanwhile, instead of
everything waiting for one batch at a time (docs/performance.md). A storage failure is
retried with backoff and the batch is never acked meanwhile: the worker pauses, it does not
crash-loop and it does not skip.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import faust
from sqlalchemy.exc import SQLAlchemyError

from monitor.pipeline_types import Origin, RawMessage
from monitor.processing import BatchOutcome, PreparedBatch
from monitor.runtime import Runtime
from pipelines.kafka_security import faust_credentials
from pipelines.web import register_health_views

log = logging.getLogger(__name__)
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 15.0
MAX_BATCHES_IN_FLIGHT = 2


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

    async def run_batch(
        stream: faust.StreamT, events: list[faust.types.EventT], previous: asyncio.Task | None
    ) -> None:
        messages = [_raw_message(e) for e in events]
        started = datetime.now(UTC)
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(classify_thread, runtime.prepare, messages)
        if previous is not None:
            await previous  # batches are stored, published and acked in order
        outcome = await commit_until_stored(prepared, len(messages))
        await publish(outcome)
        for event in events:
            await stream.ack(event)
        hooks.on_batch(messages, outcome, started)

    @app.agent(raw_topic, name="classify-news")
    async def classify_news(stream: faust.StreamT) -> None:
        in_flight: deque[asyncio.Task] = deque()
        try:
            async for events in stream.noack_take(max_batch, within=max_wait):
                previous = in_flight[-1] if in_flight else None
                in_flight.append(asyncio.create_task(run_batch(stream, list(events), previous)))
                # collect finished batches (raising their errors); wait while too many run
                while in_flight and (
                    in_flight[0].done() or len(in_flight) >= MAX_BATCHES_IN_FLIGHT
                ):
                    await in_flight.popleft()
        finally:
            for task in in_flight:  # unacked: redelivered after a restart, stored once
                task.cancel()

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
