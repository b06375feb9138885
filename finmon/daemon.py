"""`finmon worker`: the always-on daemon, assembled from its parts.

Start-up fails fast, with one clear message and a non-zero exit, on a bad config or an
unreachable database, before any Kafka connection is made (see `finmon.cli.worker`). Then:
topics are created (replicated as far as the cluster allows), the runtime's processor is
wired into the Faust app (pipelines/app.py), timed by the metrics it reports to, the
progress watch (pipelines/progress.py), the health, readiness and metrics views and the
scheduled jobs are attached. Shutdown on SIGTERM/SIGINT is Faust's: the agent stops taking
batches, the batch in flight is either finished and acked or left unacked for redelivery,
and acked offsets are committed before the consumer closes.
"""

from __future__ import annotations

import logging
from functools import partial

import faust

from finmon.runtime import Runtime
from pipelines.app import create_app
from pipelines.metrics import PipelineMetrics
from pipelines.progress import ProgressWatch
from pipelines.scheduler import attach_scheduler, build_scheduler
from pipelines.topics import ensure_topics
from pipelines.web import (
    ReadinessChecks,
    database_ok,
    register_health_views,
    register_metrics_view,
)

log = logging.getLogger(__name__)


def build_app(
    runtime: Runtime, metrics: PipelineMetrics, *, replication_factor: int = 1
) -> faust.App:
    """The worker's Faust app with every view and job attached; `runtime` must have been
    built with `instrument=metrics.timed` for inference to be timed. `replication_factor`
    is for the topics Faust creates itself (what `ensure_topics` found the cluster allows)."""
    settings = runtime.settings
    kafka = settings.kafka
    app = create_app(
        settings, runtime.processor, hooks=metrics, replication_factor=replication_factor
    )
    progress = ProgressWatch(app, kafka.input_topic, kafka.stall_after.total_seconds()).attach()
    register_health_views(
        app,
        ReadinessChecks(partial(database_ok, runtime.engine), runtime.classifier.ready),
        progress,
    )
    metrics.watch_consumer(progress)
    register_metrics_view(app, metrics)
    attach_scheduler(app, build_scheduler(settings, runtime.engine, runtime.alerts, metrics))
    return app


def run_worker(runtime: Runtime, metrics: PipelineMetrics) -> None:
    """Run until a signal stops it. Blocks; exits the process when done (Faust's way)."""
    settings = runtime.settings
    replication = ensure_topics(settings.kafka, max_message_bytes=settings.ingest.max_message_bytes)
    worker = faust.Worker(
        build_app(runtime, metrics, replication_factor=replication.factor),
        loglevel=settings.logging.level,
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
    )
    log.info(
        "finmon worker starting: topic %s -> %s (dead letters: %s), batches of %d",
        settings.kafka.input_topic,
        settings.kafka.output_topic,
        settings.kafka.dead_letter_topic,
        settings.batching.max_batch_size,
    )
    try:
        worker.execute_from_commandline()
    finally:  # Faust has stopped the agent and the jobs: close connections, the model process
        runtime.close()
