"""`finmon replay`: a JSONL file through the worker's processing, without Kafka."""

from __future__ import annotations

from pathlib import Path

import click

from finmon.cli.options import config_option, settings_from, setup_logging


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def replay(file: Path, config_path: Path | None, quiet: bool) -> None:
    """Process a JSONL file of news exactly as the worker would, without Kafka."""
    from finmon.runtime import build_runtime
    from pipelines.replay import replay as run_replay

    settings = settings_from(config_path)
    setup_logging(settings)
    runtime = build_runtime(settings, migrate=True)
    try:
        summary = run_replay(
            runtime.processor,
            runtime.alerts,
            file,
            batch_size=settings.batching.max_batch_size,
            progress=not quiet,
        )
    finally:
        runtime.close()
    click.echo(str(summary))
