"""`finmon produce`: a JSONL file onto a Kafka topic."""

from __future__ import annotations

from pathlib import Path

import click

from finmon.cli.options import config_option, settings_from, setup_logging


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@click.option("--topic", default=None, help="Topic to publish to (default: kafka.input_topic).")
def produce(file: Path, config_path: Path | None, topic: str | None) -> None:
    """Publish a JSONL file of news to Kafka, one message per line (backfills, demos)."""
    from pipelines.produce import produce_file

    settings = settings_from(config_path)
    setup_logging(settings)
    count = produce_file(settings.kafka, file, topic or settings.kafka.input_topic)
    click.echo(f"produced {count} messages to {topic or settings.kafka.input_topic}")
