"""Options and helpers shared by every `finmon` command, whichever package defines it.

Kept apart from `monitor.cli` so packages that register commands there (alerts, model) can
import them without a circular import.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from monitor.settings import Settings, load_settings

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: $FINMON_CONFIG or the repo's config.toml).",
)


def settings_from(config_path: Path | None) -> Settings:
    """Load settings, turning any config error into one clear message and exit code 2."""
    from pydantic import ValidationError

    try:
        return load_settings(config_path)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        click.echo(f"finmon: invalid configuration: {exc}", err=True)
        sys.exit(2)
