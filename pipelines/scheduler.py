"""Periodic jobs inside the daemon (apscheduler, in background threads).

Every job is idempotent and safe to run on several workers at once: alert delivery claims
due rows, the sweep only resolves what is quiet, retention deletes by age. Each run is counted
in `pipelines.metrics` and its result (delivery stats, alert events, rows deleted) fed to it.
No baseline refresh job is needed: alert baselines are read from `trend_windows` when a rule
is evaluated, and retention keeps windows far longer than any baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faust
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from alerts.service import AlertService
from monitor.retention import apply_retention
from monitor.settings import Settings
from pipelines.metrics import PipelineMetrics

log = logging.getLogger(__name__)
# apscheduler logs every run at INFO (every 2 s for delivery); `_logged` reports what matters.
logging.getLogger("apscheduler").setLevel(logging.WARNING)
DELIVERY_EVERY_S = 2
SWEEP_EVERY_S = 30


def _logged(
    name: str,
    job: Callable[[datetime], Any],
    record: Callable[[Any], None],
    metrics: PipelineMetrics,
) -> Callable[[], None]:
    def run() -> None:
        try:
            with metrics.job_run(name):
                result = job(datetime.now(UTC))
        except Exception:
            log.exception("scheduled job %s failed; it will run again", name)
            return
        record(result)
        if result:
            log.info("scheduled job %s: %s", name, result)

    return run


def build_scheduler(
    settings: Settings,
    engine: Engine,
    alerts: AlertService | None,
    metrics: PipelineMetrics | None = None,
) -> BackgroundScheduler:
    """The daemon's jobs, each run once at start and then at its interval: retention, and
    with an alert service its delivery, evaluation and sweep."""
    metrics = metrics or PipelineMetrics()
    retention = partial(
        apply_retention,
        engine,
        items_max_age=settings.retention.news_items_max_age,
        windows_max_age=settings.retention.windows_max_age,
        window_sizes=settings.windows.sizes,
        bands_max_age=2 * settings.novelty.horizon,
    )
    # (name, job, every (s), what to do with its result)
    jobs: list[tuple[str, Callable[[datetime], Any], float, Callable[[Any], None]]] = [
        (
            "retention",
            retention,
            settings.retention.run_every.total_seconds(),
            metrics.record_retention,
        )
    ]
    if alerts is not None:
        jobs.append(
            ("alert-delivery", alerts.deliver_pending, DELIVERY_EVERY_S, metrics.record_deliveries)
        )
        # judges the windows stored batches noted (alerts/pacing.py)
        jobs.append(
            (
                "alert-evaluation",
                alerts.evaluate_due,
                alerts.settings.evaluate_every.total_seconds(),
                metrics.record_alert_events,
            )
        )
        jobs.append(("alert-sweep", alerts.sweep, SWEEP_EVERY_S, metrics.record_alert_events))
    scheduler = BackgroundScheduler(timezone=UTC)
    for name, job, seconds, record in jobs:
        scheduler.add_job(
            _logged(name, job, record, metrics),
            "interval",
            seconds=seconds,
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            # Due at once, and run however late the scheduler starts (after the model loads):
            # a daemon restarted more often than hourly still applies retention.
            next_run_time=datetime.now(UTC),
            misfire_grace_time=None,
        )
    return scheduler


def attach_scheduler(app: faust.App, scheduler: BackgroundScheduler) -> None:
    """Start the jobs once the worker runs; stop them (waiting for a running job) on shutdown."""

    @app.task
    async def start_jobs() -> None:
        scheduler.start()

    # faust types a handler as a union of two callables, which mypy matches no function to
    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stop_jobs(app: faust.App, **_: Any) -> None:
        if scheduler.running:
            scheduler.shutdown(wait=True)
