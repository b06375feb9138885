"""The worker's HTTP endpoints, on Faust's own web server.

`/health` answers while the process's event loop runs (liveness: restart me if this fails);
`/ready` answers 200 only when Kafka (joined to its group), the database and the model are
all usable and no owned partition has stalled (readiness: send me work), with a JSON body
saying which check failed and, for a stall, which partitions and why; `/metrics` is the
Prometheus text format of `pipelines.metrics`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import faust
from faust.web import Request, Response, View
from sqlalchemy import text

from monitor.runtime import Runtime
from pipelines.progress import describe

if TYPE_CHECKING:
    from pipelines.metrics import PipelineMetrics
    from pipelines.progress import ProgressWatch


def _database_ok(runtime: Runtime) -> bool:
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def readiness(app: faust.App, runtime: Runtime) -> dict[str, bool]:
    """Each dependency's state; the worker is ready when all are true."""
    loop = asyncio.get_running_loop()
    consumer = app.consumer
    return {
        "kafka": bool(consumer.started) and not consumer.should_stop and not app.rebalancing,
        "database": await loop.run_in_executor(None, _database_ok, runtime),
        "model": runtime.classifier is not None,
    }


def register_health_views(app: faust.App, runtime: Runtime, progress: ProgressWatch) -> None:
    @app.page("/health")
    class Health(View):
        async def get(self, request: Request, **_: Any) -> Response:
            return self.json({"status": "ok"})

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request, **_: Any) -> Response:
            checks = await readiness(app, runtime)
            checks["kafka"] = checks["kafka"] and progress.joined
            stalls = progress.stalls()
            checks["progress"] = not stalls
            ready = all(checks.values())
            body: dict[str, Any] = {"ready": ready, "checks": checks}
            if stalls:
                body["stalled"] = [
                    describe(stall, progress.tracker.stall_after_s) for stall in stalls
                ]
            return self.json(body, status=200 if ready else 503)


def register_metrics_view(app: faust.App, metrics: PipelineMetrics) -> None:
    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request, **_: Any) -> Response:
            # The header, not content_type=: aiohttp refuses a charset inside content_type.
            headers = {"Content-Type": metrics.content_type}
            return self.bytes(metrics.exposition(), headers=headers)
