"""The Faust app: one agent that adapts a Kafka stream to the batch pipeline.

The agent only wires: its events (manual acks) go into a `BatchPipeline` (pipelines/batch.py),
which owns batching, ordering, retries and backpressure, with `BatchProcessor.classify` and
`.store` as its steps, a publish coroutine that sends dead letters and classified items on
Faust's producer, and the stream's own ack. Offsets are committed only for messages whose
rows are stored (or that were dead-lettered) and published, in order.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import faust
from sqlalchemy.exc import SQLAlchemyError

from monitor.pipeline_types import Origin, RawMessage
from monitor.processing import BatchOutcome, BatchProcessor, ClassifiedBatch
from monitor.settings import Settings
from pipelines.batch import BatchPipeline, PipelineHooks, PipelineLimits
from pipelines.kafka_consumer import install_consumer
from pipelines.kafka_producer import idempotent_producer
from pipelines.kafka_security import faust_credentials


def _raw_message(event: faust.types.EventT) -> RawMessage:
    message = event.message
    ts = datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp else None
    value = message.value if message.value is not None else b""  # a tombstone: dead-lettered
    return RawMessage(value, Origin(message.topic, message.partition, message.offset, ts))


def _faust_datadir() -> Path:
    path = Path(tempfile.gettempdir()) / "finmon-faust"
    path.mkdir(exist_ok=True)
    return path


def create_app(
    settings: Settings,
    processor: BatchProcessor,
    *,
    hooks: PipelineHooks | None = None,
    replication_factor: int = 1,
) -> faust.App:
    """A Faust app with the classify agent registered, processing with `processor`.
    `replication_factor` is for the topics Faust creates itself (`ensure_topics` says what
    the cluster allows); its producer waits for all in-sync replicas and is idempotent."""
    kafka = settings.kafka
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
    install_consumer(app, kafka.fetch_max_wait_ms)
    idempotent_producer(app)
    raw_topic = app.topic(kafka.input_topic, value_serializer="raw", key_serializer="raw")
    out_topic, dlq_topic = kafka.output_topic, kafka.dead_letter_topic  # created by ensure_topics
    limits = PipelineLimits(
        max_batch_size=settings.batching.max_batch_size,
        max_wait_s=settings.batching.max_wait_ms / 1000,
    )

    async def publish(outcome: BatchOutcome) -> None:
        """Send dead letters and classified items, and wait until the broker has them all:
        a failed send raises, so the batch is not acked. The producer is called directly,
        not through Faust's `Topic.send` machinery, which is costly per record."""
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

    @app.agent(raw_topic, name="classify-news")
    async def classify_news(stream: faust.StreamT) -> None:
        # Stopping the agent cancels the pipeline: batches not yet acked are redelivered
        # after a restart and stored once. An error in any batch ends the pipeline, and so
        # the agent. Events one by one, not `take(within=...)`: take's timer restarts after
        # every batch it yields, and polling it often enough to stamp arrivals keeps an idle
        # worker busy (docs/performance.md).
        manual = stream.noack()  # type: ignore[attr-defined]  # Stream has it, StreamT does not

        async def ack(events: Sequence[faust.types.EventT]) -> None:
            for event in events:
                await manual.ack(event)

        pipeline: BatchPipeline[faust.types.EventT, ClassifiedBatch] = BatchPipeline(
            classify=processor.classify,
            store=processor.store,
            publish=publish,
            ack=ack,
            message_of=_raw_message,
            limits=limits,
            retryable=(SQLAlchemyError,),
            hooks=hooks,
        )
        await pipeline.run(manual.events())

    return app
