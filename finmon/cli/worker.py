"""`finmon worker`: the always-on daemon."""

from __future__ import annotations

from pathlib import Path

import click

from finmon.cli.options import config_option, database_error, settings_from, setup_logging


@click.command()
@config_option
def worker(config_path: Path | None) -> None:
    """Run the always-on daemon (Faust agents on the configured Kafka and database)."""
    from sqlalchemy.exc import SQLAlchemyError

    from finmon.daemon import run_worker
    from finmon.runtime import build_runtime
    from pipelines.metrics import PipelineMetrics

    settings = settings_from(config_path)
    setup_logging(settings)
    metrics = PipelineMetrics()
    try:
        runtime = build_runtime(
            settings,
            migrate=settings.database_url.startswith("sqlite"),
            own_process=settings.model.own_process,
            instrument=metrics.timed,
        )
    except SQLAlchemyError as exc:
        database_error(settings, exc, "database unreachable")
    run_worker(runtime, metrics)
