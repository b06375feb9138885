"""`finmon worker` end to end: real broker, real PostgreSQL, real model, real processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psutil
import pytest
from sqlalchemy import Engine, select

from harness.worker import (
    REPO,
    WorkerHarness,
    consume,
    news,
    produce,
    stored_count,
    stored_ids,
    wait_for,
    window_total,
)
from monitor.db.models import NewsItemRow

pytestmark = [pytest.mark.stack, pytest.mark.slow]

HEADLINES = [
    "$AAPL shares jump 6% after Apple beats quarterly earnings estimates",
    "$BA plunges 9% after Boeing grounds fleet following safety incident",
    "Fed holds rates steady, signals patience on future cuts",
    "$XOM Exxon Mobil declares quarterly dividend of $0.95 per share",
    "$TSLA tumbles as regulators open probe into Tesla",
]


def test_worker_classifies_stores_publishes_and_dead_letters(
    tmp_path: Path, pg_engine: Engine
) -> None:
    good = [news(f"e2e-{i}", HEADLINES[i % len(HEADLINES)]) for i in range(20)]
    bad = [
        b"{not json",
        json.dumps({"id": "no-headline", "published_at": "2026-01-01T00:00:00Z"}).encode(),
        b"\xff\xfe",
    ]
    with WorkerHarness(tmp_path, "main") as worker:
        produce(worker.input_topic, good + bad)
        wait_for(lambda: stored_count(pg_engine) == 20, 90, "20 rows stored")
        out = consume(worker.output_topic, 20)
        dlq = consume(worker.dlq_topic, 3)

    assert sorted(stored_ids(pg_engine)) == sorted(f"e2e-{i}" for i in range(20))
    assert window_total(pg_engine, 300) == 20 and window_total(pg_engine, 3600) == 20
    with pg_engine.connect() as conn:
        row = conn.execute(select(NewsItemRow).where(NewsItemRow.id == "e2e-1")).one()
    assert row.sentiment == "bearish" and row.sentiment_score < 0
    assert row.tickers == ["BA"] and row.kafka_topic == worker.input_topic

    docs = [json.loads(r.value) for r in out]
    assert {d["id"] for d in docs} == {f"e2e-{i}" for i in range(20)}
    assert all(
        d["sentiment"] in ("bearish", "neutral", "bullish") and -1 <= d["sentiment_score"] <= 1
        for d in docs
    )
    assert all(d["topic"] and d["model_version"] for d in docs)

    letters = {r.value: dict(r.headers) for r in dlq}
    assert set(letters) == set(bad)
    assert letters[b"{not json"]["finmon-error-reason"].startswith(b"invalid JSON")
    assert b"missing required field 'headline'" in letters[bad[1]]["finmon-error-reason"]
    assert letters[b"\xff\xfe"]["finmon-error-reason"].startswith(b"invalid UTF-8")
    assert letters[bad[1]]["finmon-source-topic"] == worker.input_topic.encode()
    assert "finmon-source-offset" in letters[bad[1]]


def _inference_process(worker: WorkerHarness) -> psutil.Process:
    """The worker's model process (spawned by multiprocessing; not its resource tracker)."""
    assert worker.process is not None
    children = psutil.Process(worker.process.pid).children()
    [child] = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
    return child


def test_ready_is_503_while_the_inference_process_is_dead_or_restarting(
    tmp_path: Path, pg_engine: Engine
) -> None:
    with WorkerHarness(tmp_path, "ready") as worker:
        assert worker.get("/ready")[0] == 200
        dead = _inference_process(worker)
        dead.kill()

        def model_down() -> dict[str, object] | None:
            status, body = worker.get("/ready")
            return json.loads(body) if status == 503 else None

        down = wait_for(model_down, 30, "/ready to answer 503")
        assert down == {
            "ready": False,
            "checks": {"kafka": True, "database": True, "model": False, "progress": True},
        }
        worker.wait_ready(timeout=120)  # a new inference process has loaded the model
        assert _inference_process(worker).pid != dead.pid

        produce(worker.input_topic, [news("after-restart", HEADLINES[1])])
        wait_for(lambda: stored_count(pg_engine) == 1, 60, "the item stored after the restart")


def test_redelivered_items_are_not_double_counted(tmp_path: Path, pg_engine: Engine) -> None:
    batch = [news(f"dup-{i}", HEADLINES[i % len(HEADLINES)]) for i in range(12)]
    first = WorkerHarness(tmp_path, "dup")
    with first:
        produce(first.input_topic, batch)
        wait_for(lambda: stored_count(pg_engine) == 12, 90, "12 rows stored")
        produce(first.input_topic, batch[:6])  # the same messages again
        consume(first.output_topic, 18)
    # A new consumer group reads the whole topic again: every message is redelivered.
    again = WorkerHarness(tmp_path, "dup", FINMON_KAFKA__INPUT_TOPIC=first.input_topic)
    with again:
        consume(again.output_topic, 18)
    assert stored_count(pg_engine) == 12
    assert window_total(pg_engine, 300) == 12 and window_total(pg_engine, 60, "all") == 12
    assert window_total(pg_engine, 300, "ticker") == 12 - sum(1 for i in range(12) if i % 5 == 2)


def test_a_java_client_interoperates(tmp_path: Path, pg_engine: Engine) -> None:
    """Messages from Kafka's own Java console producer are read like any other."""
    lines = b"\n".join(news(f"java-{i}", HEADLINES[i]) for i in range(3)) + b"\n"
    with WorkerHarness(tmp_path, "java") as worker:
        subprocess.run(
            ["bash", "scripts/stack.sh", "console-producer", worker.input_topic],
            input=lines,
            cwd=REPO,
            check=True,
            timeout=120,
            capture_output=True,
        )
        wait_for(lambda: stored_count(pg_engine) == 3, 90, "3 rows from the Java producer")
    assert sorted(stored_ids(pg_engine)) == ["java-0", "java-1", "java-2"]
