"""`finmon db`: schema commands."""

from __future__ import annotations

from pathlib import Path

import click

from finmon.cli.options import config_option, settings_from, setup_logging


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@config_option
def upgrade(config_path: Path | None) -> None:
    """Apply the alembic migrations to the configured database."""
    from monitor.db.engine import upgrade as run_upgrade

    settings = settings_from(config_path)
    setup_logging(settings)
    run_upgrade(settings.database_url)
    click.echo("database schema is up to date")
