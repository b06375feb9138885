"""Stall detection and rebalances with real workers, the real broker and PostgreSQL.

A worker that owns partitions with lag and stops committing progress must say so: `/ready`
answers 503 with `"progress": false` and the partitions, the log says why, and both clear
once it moves again. A rebalance (a worker joining, a frozen worker's partitions handed to
the others) must leave no partition behind: every message is stored once, and no healthy
worker ever reports a stall.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import Engine

from harness.worker import (
    KeywordWorkerHarness,
    WorkerHarness,
    news,
    produce,
    stored_count,
    wait_for,
    window_total,
)
from tests.ops.prom import Scrape
from tests.reliability.accounting import Feed, PacedProducer, account, wait_until_accounted

pytestmark = [pytest.mark.stack, pytest.mark.slow]

STALL_AFTER = {"FINMON_KAFKA__STALL_AFTER": "5s"}
SESSION_TIMEOUT_S = 6  # the broker's smallest allowed (group.min.session.timeout.ms)


def scrape(worker: WorkerHarness) -> Scrape:
    status, body = worker.get("/metrics")
    assert status == 200, body
    return Scrape(body)


def inference_process(worker: WorkerHarness) -> psutil.Process:
    """The worker's model process: its child holding the most memory."""
    assert worker.process is not None
    children = psutil.Process(worker.process.pid).children()
    return max(children, key=lambda child: child.memory_info().rss)


def test_a_frozen_model_makes_the_worker_not_ready_and_it_says_why(
    tmp_path: Path, pg_engine: Engine
) -> None:
    with WorkerHarness(tmp_path, "stall", **STALL_AFTER) as worker:
        produce(worker.input_topic, [news(f"warm-{i}", "$KO names a new CFO") for i in range(8)])
        wait_for(lambda: stored_count(pg_engine) == 8, 90, "the first items stored")
        model = inference_process(worker)
        model.send_signal(signal.SIGSTOP)  # the worker's event loop runs on; its model hangs
        try:
            frozen_at = time.monotonic()
            produce(worker.input_topic, [news(f"held-{i}", "$KO slides") for i in range(12)])

            def not_ready() -> dict | None:
                status, body = worker.get("/ready")
                return json.loads(body) if status == 503 else None

            ready = wait_for(not_ready, 60, "/ready to report the stall")
            noticed_s = time.monotonic() - frozen_at
            checks = ready["checks"]
            assert checks["progress"] is False
            assert checks["kafka"] and checks["database"] and checks["model"]
            assert any("no progress for" in line for line in ready["stalled"])
            assert "not ready until it moves (kafka.stall_after 5s)" in ready["stalled"][0]
            metrics = scrape(worker)
            assert metrics.value("finmon_stalled_partitions") >= 1
            assert metrics.value("finmon_seconds_since_progress") >= 5
            assert sum(metrics.series("finmon_consumer_lag").values()) > 0
            wait_for(lambda: "no progress for" in worker.logs(), 10, "the stall logged")
            assert stored_count(pg_engine) == 8  # nothing was stored or skipped meanwhile
            print(f"\nstall reported {noticed_s:.1f}s after the model froze (stall_after 5s)")
        finally:
            model.send_signal(signal.SIGCONT)
        wait_for(lambda: stored_count(pg_engine) == 20, 90, "the held items stored")
        wait_for(lambda: worker.get("/ready")[0] == 200, 60, "ready again")
        assert "progresses again" in worker.logs()
        assert scrape(worker).value("finmon_stalled_partitions") == 0
    assert window_total(pg_engine, 300) == 20


def test_partitions_move_on_join_and_off_a_frozen_worker_without_a_stall(
    tmp_path: Path, pg_engine: Engine
) -> None:
    env = {**STALL_AFTER, "FINMON_KAFKA__SESSION_TIMEOUT": f"{SESSION_TIMEOUT_S}s"}
    first = KeywordWorkerHarness(tmp_path, "rebalance", **env)
    second = KeywordWorkerHarness(tmp_path, "rebalance-2", **env).share(first)
    feed = Feed("rebalance", 600, spread_minutes=20)
    messages = feed.messages()
    with first:
        producer = PacedProducer(first.input_topic, messages[:300], per_second=30).start()
        wait_for(lambda: stored_count(pg_engine) >= 60, 90, "the stream flowing")
        joining = time.monotonic()
        with second:  # a worker joins mid-stream (ready: it has joined the group)
            print(f"\nthe second worker joined {time.monotonic() - joining:.1f}s after its start")
            assert producer.join() == 300
            wait_for(lambda: stored_count(pg_engine) >= 270, 90, "the first half stored")
            owned = [
                scrape(w).value("finmon_assigned_partitions", topic=w.input_topic)
                for w in (first, second)
            ]
            assert owned[0] >= 1 and owned[1] >= 1 and sum(owned) == 4, owned
            assert scrape(first).value("finmon_rebalances_total") >= 2

            # The second worker freezes whole: after the session timeout the group hands its
            # partitions to the first, which stores the rest while the second is frozen.
            assert second.process is not None
            os.kill(second.process.pid, signal.SIGSTOP)
            try:
                producer = PacedProducer(first.input_topic, messages[300:], per_second=30)
                assert producer.start().join() == 300
                wait_until_accounted(feed, pg_engine, first, timeout=120)
                taken = scrape(first).value("finmon_assigned_partitions", topic=first.input_topic)
                assert taken == 4
            finally:
                os.kill(second.process.pid, signal.SIGCONT)
            wait_for(
                lambda: all(w.get("/ready")[0] == 200 for w in (first, second)),
                90,
                "both workers ready after the frozen one rejoined",
            )
        logs = first.logs()
    result = account("join + frozen worker", feed, pg_engine, first.output_topic, first.dlq_topic)
    print(f"\n{result.row()}")
    result.assert_exact()
    assert "no progress for" not in logs  # the healthy worker never stalled
