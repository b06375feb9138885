"""Options and helpers shared by every `finmon` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from monitor.settings import Settings, load_settings

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: $FINMON_CONFIG, else ./config.toml, else built-in defaults).",
)


def settings_from(config_path: Path | None) -> Settings:
    """Load settings, turning any config error into one clear message and exit code 2."""
    from pydantic import ValidationError

    try:
        return load_settings(config_path)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        click.echo(f"finmon: invalid configuration: {exc}", err=True)
        sys.exit(2)


def setup_logging(settings: Settings) -> None:
    from monitor.logging_setup import configure_logging

    configure_logging(
        settings.logging.level,
        json_format=settings.logging.json_format,
        secrets=settings.secret_values(),
    )


def database_error(settings: Settings, exc: Exception, what: str, hint: str = "") -> NoReturn:
    """Print `finmon: <what>: <reason><hint>` with secrets redacted, and exit with code 3."""
    from monitor.logging_setup import RedactSecrets

    reason = RedactSecrets(settings.secret_values()).redact(str(getattr(exc, "orig", None) or exc))
    click.echo(f"finmon: {what}: {reason.strip()}{hint}", err=True)
    sys.exit(3)
