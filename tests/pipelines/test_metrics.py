"""The worker's metrics count exactly what a batch did, and what the scheduled jobs did."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from sqlalchemy import Engine

from alerts.delivery import DeliveryStats
from monitor.contract import IngestPolicy
from monitor.db.store import NewsStore
from monitor.pipeline_types import Origin, RawMessage
from monitor.processing import BatchProcessor
from monitor.retention import RetentionResult
from monitor.settings import Settings
from pipelines.metrics import PipelineMetrics
from pipelines.progress import ProgressWatch
from tests.doubles import KeywordClassifier
from tests.ops.prom import Scrape

TOPIC = "news.raw"


def message(item_id: str, offset: int, published_ago: timedelta) -> RawMessage:
    now = datetime.now(UTC)
    published = (now - published_ago).isoformat()
    doc = {"id": item_id, "published_at": published, "headline": "$KO jumps"}
    origin = Origin(TOPIC, 0, offset, now - timedelta(seconds=2))
    return RawMessage(json.dumps(doc).encode(), origin)


def processor(engine: Engine, metrics: PipelineMetrics) -> BatchProcessor:
    """A processor whose classifier is timed by `metrics`, as the worker builds it."""
    store = NewsStore(engine, Settings().windows.sizes)
    return BatchProcessor(metrics.timed(KeywordClassifier()), store, IngestPolicy())


def scrape(metrics: PipelineMetrics) -> Scrape:
    return Scrape(metrics.exposition().decode())


def test_batch_counters_add_up_to_what_was_consumed(sqlite_engine: Engine) -> None:
    metrics = PipelineMetrics()
    batches = processor(sqlite_engine, metrics)
    batch = [
        message("a", 0, timedelta(minutes=10)),
        message("b", 1, timedelta(minutes=1)),
        message("a", 2, timedelta(minutes=10)),  # repeated within the batch
        RawMessage(b"{not json", Origin(TOPIC, 0, 3)),
    ]
    for _ in range(2):  # the second time, everything is a redelivery
        metrics.on_batch(batch, batches.process(batch), datetime.now(UTC))

    got = scrape(metrics)
    assert got.value("finmon_messages_consumed_total") == 8
    assert got.value("finmon_messages_stored_total") == 2
    assert got.value("finmon_messages_duplicate_total") == 1 + 3
    assert got.value("finmon_messages_dead_lettered_total") == 2
    assert got.value("finmon_batch_size_messages_sum") == 8
    assert got.value("finmon_batch_size_messages_count") == 2
    assert got.value("finmon_inference_duration_seconds_count") == 2
    published = {"reference": "published_at"}
    assert got.value("finmon_end_to_end_lag_seconds_count", **published) == 2
    # a (10 min) and b (1 min): both at least their age, one of them over 5 minutes
    assert got.value("finmon_end_to_end_lag_seconds_sum", **published) >= 11 * 60
    assert got.value("finmon_end_to_end_lag_seconds_bucket", le="300.0", **published) == 1
    kafka = {"reference": "kafka_timestamp"}
    assert got.value("finmon_end_to_end_lag_seconds_count", **kafka) == 2
    assert got.value("finmon_end_to_end_lag_seconds_sum", **kafka) >= 4


def test_storage_errors_and_alert_results_are_counted() -> None:
    metrics = PipelineMetrics()
    metrics.on_storage_error(TimeoutError())
    event = SimpleNamespace(rule="ticker-spike", kind="firing", severity="critical")
    metrics.record_alert_events([event, event])
    metrics.record_deliveries(DeliveryStats(sent=3, retried=1, failed=0))
    metrics.record_retention(RetentionResult(news_items=5, trend_windows=2))

    got = scrape(metrics)
    assert got.value("finmon_storage_errors_total", error="TimeoutError") == 1
    fired = {"rule": "ticker-spike", "kind": "firing", "severity": "critical"}
    assert got.value("finmon_alert_events_total", **fired) == 2
    assert got.value("finmon_alert_deliveries_total", outcome="sent") == 3
    assert got.value("finmon_alert_deliveries_total", outcome="retried") == 1
    assert got.value("finmon_alert_deliveries_total", outcome="failed") == 0
    assert got.value("finmon_retention_deleted_rows_total", table="news_items") == 5


class FakeConsumer:
    def __init__(self, highwaters: dict[TP, int | None], committed: dict[TP, int]) -> None:
        self.highwaters = highwaters
        self._committed_offset = committed

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters[tp]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch_of(consumer: Any, clock: Clock, stall_after_s: float = 30) -> ProgressWatch:
    app = SimpleNamespace(consumer=consumer)
    return ProgressWatch(app, TOPIC, stall_after_s, clock=clock)  # type: ignore[arg-type]


def test_consumer_lag_is_end_minus_committed_for_known_partitions() -> None:
    p0, p1, p2, other = TP(TOPIC, 0), TP(TOPIC, 1), TP(TOPIC, 2), TP("elsewhere", 0)
    consumer = FakeConsumer({p0: 120, p1: 7, p2: None, other: 50}, {p0: 100, p1: 7, other: 1})
    watch = watch_of(consumer, Clock())
    assert {tp.partition: o.lag for tp, o in watch.offsets().items()} == {0: 20, 1: 0, 2: None}

    metrics = PipelineMetrics()
    metrics.watch_consumer(watch)
    lags = scrape(metrics).series("finmon_consumer_lag")
    assert lags == {
        frozenset({("topic", TOPIC), ("partition", "0")}): 20,
        frozenset({("topic", TOPIC), ("partition", "1")}): 0,
    }


def test_a_consumer_that_is_not_running_reports_no_lag() -> None:
    class Stopped:
        def assignment(self) -> Any:
            raise RuntimeError("consumer not started")

    assert watch_of(Stopped(), Clock()).offsets() == {}


def test_progress_metrics_follow_assignment_rebalances_and_stalls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gauges an operator alerts on, and the log line that says why a worker stalled."""
    p0, p1 = TP(TOPIC, 0), TP(TOPIC, 1)
    consumer = FakeConsumer({p0: 50, p1: 9}, {p0: 10, p1: 9})
    clock = Clock()
    watch = watch_of(consumer, clock)
    metrics = PipelineMetrics()
    metrics.watch_consumer(watch)
    watch.assigned([p0])
    watch.assigned([p0, p1])  # a second rebalance
    watch.watch()
    clock.now += 31
    with caplog.at_level("INFO", logger="pipelines.progress"):
        watch.watch()
        got = scrape(metrics)
        assert got.value("finmon_assigned_partitions", topic=TOPIC) == 2
        assert got.value("finmon_rebalances_total") == 2
        assert got.value("finmon_seconds_since_progress") == 31
        assert got.value("finmon_stalled_partitions") == 1
        [stall] = watch.stalls()
        assert stall.partition == p0 and stall.lag == 40
        consumer._committed_offset[p0] = 50  # caught up
        clock.now += 1
        watch.watch()
    assert scrape(metrics).value("finmon_stalled_partitions") == 0
    assert scrape(metrics).value("finmon_seconds_since_progress") == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"no progress for 31s on {TOPIC}[0], which this worker owns, with lag 40"
        " (committed 10, end 50): not ready until it moves (kafka.stall_after 30s)"
    ]
    assert any("progresses again" in r.getMessage() for r in caplog.records)


def test_a_failing_job_is_counted_as_an_error() -> None:
    metrics = PipelineMetrics()
    with pytest.raises(RuntimeError), metrics.job_run("alert-sweep"):
        raise RuntimeError("database gone")
    got = scrape(metrics)
    assert got.value("finmon_job_runs_total", job="alert-sweep", outcome="error") == 1
    assert got.value("finmon_job_runs_total", job="alert-sweep", outcome="ok") == 0
