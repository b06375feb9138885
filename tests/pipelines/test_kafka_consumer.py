"""The worker's consumer: the configured fetch wait, and commits that never skip a record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import faust
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from harness.stack import KAFKA_BOOTSTRAP
from pipelines.kafka_consumer import install_consumer

TOPIC = "finmon-consumer-test"
PARTITION = TP(TOPIC, 0)


def _app(tmp_path: Path, fetch_max_wait_ms: int | None = 100) -> faust.App:
    app = faust.App(
        "finmon-consumer-test",
        broker=f"kafka://{KAFKA_BOOTSTRAP}",
        store="memory://",
        datadir=tmp_path,
    )
    if fetch_max_wait_ms is not None:
        install_consumer(app, fetch_max_wait_ms)
    app.topics.acking_topics.add(TOPIC)  # as an agent subscribing to it does
    return app


@pytest.mark.stack
@pytest.mark.parametrize(("configured", "sent"), [(None, 1500), (100, 100), (5, 5)])
async def test_the_fetcher_uses_the_configured_wait(
    tmp_path: Path, configured: int | None, sent: int
) -> None:
    # None: Faust's own consumer, whose fixed wait is the reason for the override. The
    # worker consumer is built as the worker builds it, started on the broker, and the
    # wait its fetcher puts in each request read back.
    app = _app(tmp_path, configured)
    thread = app.consumer._new_consumer_thread()
    consumer = thread._create_worker_consumer(app.transport)
    await consumer.start()
    try:
        assert consumer._fetcher._fetch_max_wait_ms == sent
    finally:
        await consumer.stop()


def _ack(consumer: faust_aiokafka.Consumer, *offsets: int) -> None:
    for offset in offsets:
        consumer.ack(Message(TOPIC, 0, offset, 0.0, 0, None, None, b"{}", None, tp=PARTITION))


@pytest.fixture
def sought(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[faust_aiokafka.Consumer]:
    """finmon's consumer just after Faust sought its one partition to committed offset 10
    (the broker's part of the seek replaced: the bookkeeping is what is under test)."""

    async def committed_offsets(self: faust_aiokafka.Consumer) -> None:
        self._committed_offset[PARTITION] = 10

    async def position(tp: TP) -> int:
        return 10

    monkeypatch.setattr(faust_aiokafka.Consumer, "perform_seek", committed_offsets)
    consumer = _app(tmp_path).consumer
    monkeypatch.setattr(consumer, "assignment", lambda: {PARTITION})
    monkeypatch.setattr(consumer, "position", position)
    yield consumer


async def test_commits_move_only_through_acked_offsets_from_the_seek(
    sought: faust_aiokafka.Consumer,
) -> None:
    consumer = sought
    await consumer.perform_seek()
    # A record fetched before the seek and handed out after it (offset 11) is acked before
    # offset 10, which the seek handed out again: the commit waits for 10.
    _ack(consumer, 11)
    assert consumer._filter_committable_offsets({PARTITION}) == {}
    _ack(consumer, 10, 12)
    assert consumer._filter_committable_offsets({PARTITION}) == {PARTITION: 13}
    _ack(consumer, 15)
    assert consumer._filter_committable_offsets({PARTITION}) == {}
    _ack(consumer, 13, 14)
    assert consumer._filter_committable_offsets({PARTITION}) == {PARTITION: 16}


async def test_faust_alone_commits_past_the_hole(sought: faust_aiokafka.Consumer) -> None:
    # the same first ack on Faust's own bookkeeping: offset 10, never acked, is committed
    consumer = sought
    await consumer.perform_seek()
    consumer._new_offset = lambda tp: faust_aiokafka.Consumer._new_offset(consumer, tp)
    _ack(consumer, 11)
    assert consumer._filter_committable_offsets({PARTITION}) == {PARTITION: 12}


async def test_no_commit_for_a_partition_not_assigned(sought: faust_aiokafka.Consumer) -> None:
    consumer = sought
    await consumer.perform_seek()
    other = TP(TOPIC, 1)
    consumer.ack(Message(TOPIC, 1, 0, 0.0, 0, None, None, b"{}", None, tp=other))
    assert consumer._filter_committable_offsets({other}) == {}


def test_no_record_is_dropped_as_already_read(tmp_path: Path) -> None:
    # Faust drops a record whose offset is below the highest it has read; finmon's consumer
    # keeps no read offset, so every record fetched reaches the pipeline
    consumer = _app(tmp_path).consumer
    consumer._read_offset[PARTITION] = 15
    assert consumer._read_offset[PARTITION] is None
    assert dict(consumer._read_offset) == {}
