"""`finmon ingest`: the feed poller (docs/ingest.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from finmon.cli.options import config_option, database_error, settings_from, setup_logging


@click.command()
@config_option
@click.option(
    "--once",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Poll every feed once and append the new entries to this JSONL file (no Kafka).",
)
def ingest(config_path: Path | None, output: Path | None) -> None:
    """Poll the [[ingest.feeds]] and publish their new entries to the input topic."""
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from ingest.run import ingest_once, run_ingest
    from monitor.db.engine import upgrade

    settings = settings_from(config_path)
    setup_logging(settings)
    if not settings.ingest.feeds:
        click.echo("finmon: no [[ingest.feeds]] configured", err=True)
        sys.exit(2)
    if settings.database_url.startswith("sqlite"):
        try:
            upgrade(settings.database_url)
        except SQLAlchemyError as exc:
            database_error(settings, exc, "database unreachable")
    if output is None:
        asyncio.run(run_ingest(settings))
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    click.echo(asyncio.run(ingest_once(settings, output)))
