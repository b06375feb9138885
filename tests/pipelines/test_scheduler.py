"""The daemon's scheduled jobs: which run, and how each run is counted and reported."""

from __future__ import annotations

from sqlalchemy import Engine

from monitor.settings import Settings
from pipelines.metrics import PipelineMetrics
from pipelines.scheduler import build_scheduler
from tests.ops.prom import Scrape


def test_scheduled_jobs_are_counted_and_feed_their_results(sqlite_engine: Engine) -> None:
    metrics = PipelineMetrics()
    scheduler = build_scheduler(Settings(), sqlite_engine, None, metrics)
    assert [job.id for job in scheduler.get_jobs()] == ["retention"]  # no alert service here
    scheduler.get_job("retention").func()

    got = Scrape(metrics.exposition().decode())
    assert got.value("finmon_job_runs_total", job="retention", outcome="ok") == 1
    assert got.value("finmon_job_last_success_timestamp_seconds", job="retention") > 0
    assert ("finmon_retention_deleted_rows_total", frozenset({("table", "news_items")})) in (
        got.samples
    )
