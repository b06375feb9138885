"""Faults mid-stream, every message counted: a killed worker, a database outage, a broker
restart. Each test produces N identified messages (one in ten invalid) while the worker runs,
injects the fault once part of them is stored, repairs it, waits until every id is stored
or dead-lettered, and then requires: no duplicate, nothing lost, window counts equal to the
stored rows, every stored item published. Each prints its row of the table in
docs/reliability.md (run with `-s` to see it).
"""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from harness.worker import WorkerHarness, read_topic, stored_count, wait_for
from monitor.db.models import NewsItemRow
from tests.reliability.accounting import (
    Accounting,
    Feed,
    PacedProducer,
    account,
    wait_until_accounted,
)
from tests.reliability.conftest import RELIABILITY_PG_URL, SecretDatabase
from tests.reliability.stack_control import committed_offsets, outage

pytestmark = [pytest.mark.stack, pytest.mark.slow]

N = 400
PER_SECOND = 40.0
"""The feed lasts about 10 s, so the fault lands while it is still arriving."""
OUTAGE_S = 10.0


def start_feed(worker: WorkerHarness, feed: Feed, engine: Engine) -> PacedProducer:
    """Send the feed in the background; return once a fifth of it is stored, so the fault
    that follows lands mid-stream."""
    producer = PacedProducer(worker.input_topic, feed.messages(), per_second=PER_SECOND).start()
    wait_for(lambda: stored_count(engine) >= N // 5, 120, "a fifth of the feed stored")
    return producer


def finish(
    run: str, feed: Feed, engine: Engine, worker: WorkerHarness, producer: PacedProducer
) -> Accounting:
    """Wait for the producer and for every id to be accounted for; the counts."""
    assert producer.join() == feed.n
    wait_until_accounted(feed, engine, worker)
    result = account(run, feed, engine, worker.output_topic, worker.dlq_topic)
    print(f"\n{result.row()}")
    return result


def metric_total(worker: WorkerHarness, name: str) -> float:
    """The sum of a metric's samples on the worker's /metrics."""
    status, text = worker.get("/metrics")
    assert status == 200
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_worker_killed_mid_stream_and_restarted(tmp_path: Path, reliability_engine: Engine) -> None:
    feed = Feed("kill", N)
    # The broker waits a session timeout before it gives a dead member's partitions to the
    # restarted one (60 s by default); 10 s keeps the test short and changes nothing else.
    worker = WorkerHarness(
        tmp_path,
        "kill",
        FINMON_DATABASE__URL=RELIABILITY_PG_URL,
        FINMON_KAFKA__SESSION_TIMEOUT="10s",
    )
    with worker:
        producer = start_feed(worker, feed, reliability_engine)
        assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
        stored_at_kill = stored_count(reliability_engine)
        worker.start()  # same topics and group: resumes from the committed offsets
        run = "worker SIGKILL mid-stream, restarted"
        result = finish(run, feed, reliability_engine, worker, producer)
        assert worker.get("/health")[0] == 200
    result.assert_exact()
    assert stored_at_kill < len(feed.to_store), "the kill came after the whole feed was stored"


def test_postgres_outage_mid_stream(
    tmp_path: Path, reliability_engine: Engine, secret_database: SecretDatabase
) -> None:
    """The worker pauses and retries while PostgreSQL is down: it stays up, /health answers,
    /ready says the database is down, and no offset is committed past what is stored."""
    feed = Feed("pg", N)
    worker = WorkerHarness(tmp_path, "pg", FINMON_DATABASE__URL=secret_database.url)
    group = worker.env["FINMON_KAFKA__CONSUMER_GROUP"]
    commits: list[dict[int, int]] = []
    with worker:
        assert worker.process is not None
        pid = worker.process.pid
        producer = start_feed(worker, feed, reliability_engine)
        with outage("postgres"):
            down_at = datetime.now(UTC)  # no row can be stored from here until the restart
            deadline = time.monotonic() + OUTAGE_S
            while time.monotonic() < deadline:
                assert worker.process.poll() is None, f"worker died:\n{worker.logs()}"
                assert worker.get("/health")[0] == 200
                commits.append(committed_offsets(group, worker.input_topic))
                time.sleep(1)
            ready = worker.get("/ready")
        result = finish(
            "PostgreSQL stopped 10 s mid-stream", feed, reliability_engine, worker, producer
        )
        assert worker.process.pid == pid and worker.process.poll() is None  # no crash, no restart
        storage_errors = metric_total(worker, "finmon_storage_errors_total")
        logs = worker.logs()
    result.assert_exact()
    assert ready[0] == 503 and json.loads(ready[1])["checks"]["database"] is False
    assert storage_errors > 0 and "offsets held" in logs
    if secret_database.password:
        assert secret_database.password not in logs

    # Offsets committed while the database was down may cover only rows stored before it
    # went down, or dead letters.
    with reliability_engine.connect() as conn:
        stored_before = set(
            conn.scalars(select(NewsItemRow.id).where(NewsItemRow.received_at < down_at))
        )
    done_before = stored_before | feed.to_dead_letter  # all dead-lettered (assert_exact)
    by_position = {(r.partition, r.offset): r.key.decode() for r in read_topic(worker.input_topic)}
    assert len(stored_before) < len(feed.to_store), "the outage came after the whole feed"
    assert any(sum(sample.values()) for sample in commits), "nothing committed to check"
    for sample in commits:
        for (partition, offset), item_id in by_position.items():
            if offset < sample.get(partition, 0):
                assert item_id in done_before, f"offset of {item_id} committed before it was stored"


def test_kafka_broker_restarted_mid_stream(tmp_path: Path, reliability_engine: Engine) -> None:
    feed = Feed("kafka", N)
    worker = WorkerHarness(tmp_path, "kafka", FINMON_DATABASE__URL=RELIABILITY_PG_URL)
    with worker:
        assert worker.process is not None
        pid = worker.process.pid
        producer = start_feed(worker, feed, reliability_engine)
        with outage("kafka"):
            stored_at_fault = stored_count(reliability_engine)
            time.sleep(5)
        run = "Kafka broker restarted mid-stream"
        result = finish(run, feed, reliability_engine, worker, producer)
        assert worker.process.pid == pid and worker.process.poll() is None
        assert worker.get("/health")[0] == 200
    result.assert_exact()
    assert stored_at_fault < len(feed.to_store), "the restart came after the whole feed"
