"""Periodic jobs inside the daemon (apscheduler, in background threads).

Every job is idempotent and safe to run on several workers at once: alert delivery claims
due rows, the sweep only resolves what is quiet, retention deletes by age.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import faust
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.runtime import Runtime

log = logging.getLogger(__name__)
DELIVERY_EVERY_S = 2
SWEEP_EVERY_S = 30


def _logged(name: str, job: Callable[[datetime], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            result = job(datetime.now(UTC))
        except Exception:
            log.exception("scheduled job %s failed; it will run again", name)
            return
        if result:
            log.info("scheduled job %s: %s", name, result)

    return run


def build_scheduler(runtime: Runtime) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=UTC)
    jobs: list[tuple[str, Callable[[datetime], object], float]] = []
    if runtime.alerts is not None:
        jobs.append(("alert-delivery", runtime.alerts.deliver_pending, DELIVERY_EVERY_S))
        jobs.append(("alert-sweep", runtime.alerts.sweep, SWEEP_EVERY_S))
    for name, job, seconds in jobs:
        scheduler.add_job(
            _logged(name, job), "interval", seconds=seconds, id=name, max_instances=1, coalesce=True
        )
    return scheduler


def attach_scheduler(app: faust.App, runtime: Runtime) -> BackgroundScheduler:
    """Start the jobs once the worker runs; stop them (waiting for a running job) on shutdown."""
    scheduler = build_scheduler(runtime)

    @app.task
    async def start_jobs() -> None:
        scheduler.start()

    @app.on_before_shutdown.connect
    async def stop_jobs(app: faust.App, **_: object) -> None:
        if scheduler.running:
            scheduler.shutdown(wait=True)

    return scheduler
