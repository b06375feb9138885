"""The `finmon` command line: one group, one module per command.

Adding a command is a module here with a `click.Command` (imports of the heavy parts inside
the command's function, so `finmon --help` stays quick) and one line in `COMMANDS`.
"""

from __future__ import annotations

import click

from finmon.cli.alerts import alerts_command
from finmon.cli.db import db
from finmon.cli.ingest import ingest
from finmon.cli.model import (
    classify_command,
    evaluate_command,
    recalibrate_command,
    refit_heads_command,
    soup_command,
    train_command,
)
from finmon.cli.produce import produce
from finmon.cli.replay import replay
from finmon.cli.sample import sample
from finmon.cli.trends import trends
from finmon.cli.worker import worker

COMMANDS: tuple[click.Command, ...] = (
    worker,
    ingest,
    replay,
    produce,
    sample,
    db,
    train_command,
    soup_command,
    recalibrate_command,
    refit_heads_command,
    evaluate_command,
    classify_command,
    alerts_command,
    trends,
)


@click.group()
@click.version_option(package_name="finmon")
def main() -> None:
    """finmon: monitor financial news sentiment from Kafka, in SQL, with alerts."""


for _command in COMMANDS:
    main.add_command(_command)
