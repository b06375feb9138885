"""The worker's Prometheus metrics, served at `/metrics` (see `pipelines.web`).

Why a registry per `PipelineMetrics` rather than prometheus-client's global one: a test can
build as many as it likes without "duplicated timeseries" errors, and the worker exposes
exactly finmon's series. Counters are fed from the values the pipeline already returns (the
batch outcome, the alert service's events and delivery stats, the retention result), so a
number on a dashboard always means what the code did, never a guess made beside it.

Every message a worker consumes ends up in exactly one of `stored`, `duplicate` (a redelivery
or a repeat within its batch) and `dead_lettered`, so the three add up to `consumed`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.model.interface import Classification, Classifier, ModelInput
from monitor.pipeline_types import RawMessage
from monitor.processing import BatchOutcome
from pipelines.batch import PipelineHooks

if TYPE_CHECKING:
    from alerts.delivery import DeliveryStats
    from alerts.service import AlertEvent
    from monitor.retention import RetentionResult
    from pipelines.progress import ProgressWatch

LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
"""End-to-end lag spans milliseconds (live feed) to a day (a backfill)."""
BATCH_BUCKETS = tuple(float(2**n) for n in range(13))  # 1 .. 4096, the batch size limit
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class PipelineMetrics(PipelineHooks):
    """finmon's metrics, and the hooks and callbacks that keep them up to date."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"
    """What `exposition` writes: the classic text format every Prometheus version reads."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()

        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
            return Counter(name, doc, labels, registry=self.registry)

        def histogram(
            name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()
        ) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

        self.consumed = counter("finmon_messages_consumed", "Messages taken from the input topic.")
        self.stored = counter("finmon_messages_stored", "Messages stored as new news items.")
        self.duplicates = counter(
            "finmon_messages_duplicate",
            "Messages whose id was already stored or already in the same batch.",
        )
        self.dead_lettered = counter(
            "finmon_messages_dead_lettered", "Messages refused and sent to the dead-letter topic."
        )
        self.storage_errors = counter(
            "finmon_storage_errors",
            "Failed attempts to store a batch (each is retried; offsets are held).",
            ["error"],
        )
        self.batch_size = histogram(
            "finmon_batch_size_messages", "Messages per batch taken from Kafka.", BATCH_BUCKETS
        )
        self.batch_seconds = histogram(
            "finmon_batch_duration_seconds",
            "From taking a batch to acking it: decode, classify, store, alerts, publish.",
            LATENCY_BUCKETS,
        )
        self.inference_seconds = histogram(
            "finmon_inference_duration_seconds",
            "Model inference time per batch (the classifier alone).",
            LATENCY_BUCKETS,
        )
        self.lag_seconds = histogram(
            "finmon_end_to_end_lag_seconds",
            "From an item's published_at or its Kafka timestamp to its row being stored.",
            LAG_BUCKETS,
            ["reference"],
        )
        # the two children, looked up once: `labels()` per stored item is measurable work
        self._lag_published = self.lag_seconds.labels("published_at")
        self._lag_kafka = self.lag_seconds.labels("kafka_timestamp")
        self.alert_events = counter(
            "finmon_alert_events",
            "Alert notifications decided, by kind: firing, escalated, repeat, resolved.",
            ["rule", "kind", "severity"],
        )
        self.deliveries = counter(
            "finmon_alert_deliveries",
            "Alert delivery attempts by outcome: sent, retried (will try again), failed.",
            ["outcome"],
        )
        self.retention_deleted = counter(
            "finmon_retention_deleted_rows", "Rows deleted by the retention job.", ["table"]
        )
        self.job_runs = counter(
            "finmon_job_runs", "Scheduled job runs by outcome (ok or error).", ["job", "outcome"]
        )
        self.job_last_success = Gauge(
            "finmon_job_last_success_timestamp_seconds",
            "When each scheduled job last succeeded (Unix time): alert if it stops moving.",
            ["job"],
            registry=self.registry,
        )

    # -- the pipeline's hooks ---------------------------------------------------------------

    def on_batch(
        self, messages: Sequence[RawMessage], outcome: BatchOutcome, started: datetime
    ) -> None:
        now = time.time()
        self.consumed.inc(len(messages))
        self.stored.inc(len(outcome.stored.inserted))
        self.duplicates.inc(len(outcome.stored.duplicates) + outcome.repeated_in_batch)
        self.dead_lettered.inc(len(outcome.dead_letters))
        self.batch_size.observe(len(messages))
        self.batch_seconds.observe(max(now - started.timestamp(), 0.0))
        for item in outcome.stored.inserted:
            _observe_lag(self._lag_published, now, item.item.published_at)
            if item.origin is not None and item.origin.timestamp is not None:
                _observe_lag(self._lag_kafka, now, item.origin.timestamp)

    def on_storage_error(self, exc: Exception) -> None:
        self.storage_errors.labels(type(exc).__name__).inc()

    # -- results of the alert service and the scheduled jobs ----------------------------

    def record_alert_events(self, events: Iterable[AlertEvent]) -> None:
        """Count what `AlertService.evaluate` or `.sweep` returned."""
        for event in events:
            self.alert_events.labels(event.rule, str(event.kind), event.severity).inc()

    def record_deliveries(self, stats: DeliveryStats) -> None:
        """Count what `AlertService.deliver_pending` returned."""
        for outcome in ("sent", "retried", "failed"):
            self.deliveries.labels(outcome).inc(getattr(stats, outcome))

    def record_retention(self, result: RetentionResult) -> None:
        self.retention_deleted.labels("news_items").inc(result.news_items)
        self.retention_deleted.labels("trend_windows").inc(result.trend_windows)

    @contextmanager
    def job_run(self, job: str) -> Iterator[None]:
        """Count one run of a scheduled job; an exception counts as an error and propagates."""
        try:
            yield
        except Exception:
            self.job_runs.labels(job, "error").inc()
            raise
        self.job_runs.labels(job, "ok").inc()
        self.job_last_success.labels(job).set_to_current_time()

    # -- wiring ----------------------------------------------------------------------------

    def timed(self, classifier: Classifier) -> TimedClassifier:
        """`classifier`, timed into `finmon_inference_duration_seconds`, so inference is
        measured apart from SQL. The composition root builds the processor with it."""
        return TimedClassifier(classifier, self.inference_seconds)

    def watch_consumer(self, progress: ProgressWatch) -> None:
        """Report the consumer's lag, assignment, rebalances and progress at each scrape."""
        self.registry.register(ProgressCollector(progress))

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


class TimedClassifier:
    """A `Classifier` that times each call of the one it wraps."""

    def __init__(self, inner: Classifier, seconds: Histogram) -> None:
        self.inner = inner
        self.seconds = seconds

    @property
    def model_version(self) -> str:
        return self.inner.model_version

    @property
    def accepts_targets(self) -> bool:
        return self.inner.accepts_targets

    def classify(self, inputs: Sequence[ModelInput]) -> list[Classification]:
        with self.seconds.time():
            return self.inner.classify(inputs)

    def ready(self) -> bool:
        return self.inner.ready()


class ProgressCollector(Collector):
    """The consumer's state at each scrape (never stale), from the worker's `ProgressWatch`:

    * `finmon_consumer_lag{topic, partition}`: end offset minus committed offset of each
      owned input partition (Kafka's own definition, what `kafka-consumer-groups
      --describe` shows; a partition the group never committed counts from its first
      offset); partitions whose offsets are not known yet are left out, not guessed;
    * `finmon_assigned_partitions{topic}`: how many input partitions this worker owns;
    * `finmon_rebalances_total`: assignments this worker received (the first one included);
    * `finmon_seconds_since_progress`: the longest an owned partition with lag has gone
      without its committed offset moving (0 when nothing waits);
    * `finmon_stalled_partitions`: owned partitions stalled for `kafka.stall_after`.
    """

    def __init__(self, progress: ProgressWatch) -> None:
        self.progress = progress

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        lag, assigned, rebalances, idle, stalled = families = self._families()
        topic = self.progress.topic
        offsets = self.progress.offsets()
        for tp, known in sorted(offsets.items(), key=lambda item: item[0].partition):
            if known.lag is not None:
                lag.add_metric([topic, str(tp.partition)], known.lag)
        tracker = self.progress.tracker
        assigned.add_metric([topic], len(tracker.assigned))
        rebalances.add_metric([], tracker.rebalances)
        idle.add_metric([], self.progress.seconds_without_progress())
        stalled.add_metric([], len(self.progress.stalls()))
        return families

    @staticmethod
    def _families() -> tuple[
        GaugeMetricFamily,
        GaugeMetricFamily,
        CounterMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
    ]:
        return (
            GaugeMetricFamily(
                "finmon_consumer_lag",
                "Messages not yet committed per assigned input partition (end minus committed).",
                labels=["topic", "partition"],
            ),
            GaugeMetricFamily(
                "finmon_assigned_partitions",
                "Input partitions this worker owns.",
                labels=["topic"],
            ),
            CounterMetricFamily(
                "finmon_rebalances",
                "Partition assignments this worker received (the first one included).",
            ),
            GaugeMetricFamily(
                "finmon_seconds_since_progress",
                "Longest time an owned partition with lag has gone without committed progress.",
            ),
            GaugeMetricFamily(
                "finmon_stalled_partitions",
                "Owned partitions with lag and no progress for kafka.stall_after.",
            ),
        )


def _observe_lag(histogram: Histogram, now: float, at: datetime) -> None:
    # An item published slightly in the future (allowed clock skew) has no negative lag.
    histogram.observe(max(now - at.timestamp(), 0.0))
