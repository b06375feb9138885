"""The Faust app: one agent that wires Kafka to the shared `Runtime`.

The agent only moves data: it takes a batch of raw events, hands it to `Runtime.handle` in an
executor thread (model inference and SQL never run on the event loop), publishes dead letters
and classified items, and only then acks the events, so offsets are committed only for
messages whose rows are stored (or that were dead-lettered). A storage failure is retried
with backoff and the batch is never acked meanwhile: the worker pauses, it does not crash-loop
and it does not skip.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import faust
from sqlalchemy.exc import SQLAlchemyError

from monitor.pipeline_types import Origin, RawMessage
from monitor.runtime import HandledBatch, Runtime
from pipelines.kafka_security import faust_credentials
from pipelines.web import register_health_views

log = logging.getLogger(__name__)
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 15.0


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
    out_topic = app.topic(kafka.output_topic, value_serializer="raw", key_serializer="raw")
    dlq_topic = app.topic(kafka.dead_letter_topic, value_serializer="raw", key_serializer="raw")
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finmon-batch")
    max_batch = settings.batching.max_batch_size
    max_wait = settings.batching.max_wait_ms / 1000

    async def handle_until_stored(messages: list[RawMessage]) -> HandledBatch:
        delay = RETRY_INITIAL_S
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await loop.run_in_executor(executor, runtime.handle, messages)
            except SQLAlchemyError as exc:
                hooks.on_storage_error(exc)
                log.warning(
                    "storing a batch of %d failed (%s); retrying in %.1fs, offsets held",
                    len(messages),
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def publish(handled: HandledBatch) -> None:
        outcome = handled.outcome
        for letter in outcome.dead_letters:
            await dlq_topic.send(value=letter.raw, headers=letter.headers())
        for item in outcome.classified:
            await out_topic.send(key=item.item.id.encode(), value=item.to_json())
        await app.producer.flush()

    @app.agent(raw_topic, name="classify-news")
    async def classify_news(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(max_batch, within=max_wait):
            messages = [_raw_message(e) for e in events]
            started = datetime.now(UTC)
            handled = await handle_until_stored(messages)
            await publish(handled)
            for event in events:
                await stream.ack(event)
            hooks.on_batch(messages, handled, started)

    register_health_views(app, runtime)
    app.finmon_runtime = runtime  # type: ignore[attr-defined]
    app.finmon_executor = executor  # type: ignore[attr-defined]
    return app


class PipelineHooks:
    """Observation points (metrics, tests) the agent calls; no-ops by default."""

    def on_batch(
        self, messages: list[RawMessage], handled: HandledBatch, started: datetime
    ) -> None:
        """Called after a batch is stored, published and acked."""

    def on_storage_error(self, exc: Exception) -> None:
        """Called each time storing a batch fails and will be retried."""
