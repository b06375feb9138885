"""The worker's HTTP endpoints, on Faust's own web server.

`/health` answers while the process's event loop runs (liveness: restart me if this fails);
`/ready` answers 200 only when Kafka (joined to its group), the database and the model are
all usable and no owned partition has stalled (readiness: send me work), with a JSON body
saying which check failed and, for a stall, which partitions and why; `/metrics` is the
Prometheus text format of `pipelines.metrics`.

The database and model checks are injected (the composition root knows the engine and the
classifier; this module does not), and both are blocking calls run off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
from faust.web import Request, Response, View
from sqlalchemy import Engine, text

from pipelines.metrics import PipelineMetrics
from pipelines.progress import ProgressWatch, describe


def database_ok(engine: Engine) -> bool:
    """One round trip to the database succeeds."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ReadinessChecks:
    """The worker's dependencies beside Kafka: each callable says whether it is usable now."""

    database: Callable[[], bool]
    model: Callable[[], bool]
    """False while the inference process is dead or restarting."""


async def readiness(app: faust.App, checks: ReadinessChecks) -> dict[str, bool]:
    """Each dependency's state; the worker is ready when all are true."""
    loop = asyncio.get_running_loop()
    consumer = app.consumer
    database, model = await asyncio.gather(
        loop.run_in_executor(None, checks.database), loop.run_in_executor(None, checks.model)
    )
    return {
        "kafka": bool(consumer.started) and not consumer.should_stop and not app.rebalancing,
        "database": database,
        "model": model,
    }


def progress_state(state: dict[str, bool], progress: ProgressWatch) -> dict[str, Any]:
    """The `/ready` body: `state` with Kafka requiring the group joined, and the progress
    check, with a line per stalled partition when there is one."""
    checks = {**state, "kafka": state["kafka"] and progress.joined}
    stalls = progress.stalls()
    checks["progress"] = not stalls
    body: dict[str, Any] = {"ready": all(checks.values()), "checks": checks}
    if stalls:
        body["stalled"] = [describe(stall, progress.tracker.stall_after_s) for stall in stalls]
    return body


def register_health_views(app: faust.App, checks: ReadinessChecks, progress: ProgressWatch) -> None:
    @app.page("/health")
    class Health(View):
        async def get(self, request: Request, **_: Any) -> Response:
            return self.json({"status": "ok"})

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request, **_: Any) -> Response:
            body = progress_state(await readiness(app, checks), progress)
            return self.json(body, status=200 if body["ready"] else 503)


def register_metrics_view(app: faust.App, metrics: PipelineMetrics) -> None:
    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request, **_: Any) -> Response:
            # The header, not content_type=: aiohttp refuses a charset inside content_type.
            headers = {"Content-Type": metrics.content_type}
            return self.bytes(metrics.exposition(), headers=headers)
