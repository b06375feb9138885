"""`finmon worker`: the always-on daemon around the Faust app.

Start-up fails fast, with one clear message and a non-zero exit, on a bad config or an
unreachable database, before any Kafka connection is made. Shutdown on SIGTERM/SIGINT is
Faust's: the agent stops taking batches, the batch in flight is either finished and acked or
left unacked for redelivery, and acked offsets are committed before the consumer closes.
"""

from __future__ import annotations

import logging

import faust

from monitor.runtime import Runtime
from monitor.settings import Settings
from pipelines.app import create_app
from pipelines.metrics import PipelineMetrics
from pipelines.scheduler import attach_scheduler
from pipelines.topics import ensure_topics
from pipelines.web import register_metrics_view

log = logging.getLogger(__name__)


def run_worker(
    settings: Settings, runtime: Runtime, *, metrics: PipelineMetrics | None = None
) -> None:
    """Run until a signal stops it. Blocks; exits the process when done (Faust's way)."""
    replication = ensure_topics(settings.kafka, max_message_bytes=settings.ingest.max_message_bytes)
    metrics = metrics or PipelineMetrics()
    metrics.instrument(runtime)
    app = create_app(runtime, hooks=metrics, replication_factor=replication.factor)
    metrics.watch_consumer(app.finmon_progress)
    register_metrics_view(app, metrics)
    attach_scheduler(app, runtime, metrics)
    worker = faust.Worker(
        app,
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
