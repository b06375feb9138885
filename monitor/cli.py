"""The `finmon` command line."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from monitor.cli_options import config_option, settings_from
from monitor.settings import Settings


def setup_logging(settings: Settings) -> None:
    from monitor.logging_setup import configure_logging

    configure_logging(
        settings.logging.level,
        json_format=settings.logging.json_format,
        secrets=settings.secret_values(),
    )


@click.group()
@click.version_option(package_name="finmon")
def main() -> None:
    """finmon: monitor financial news sentiment from Kafka, in SQL, with alerts."""


@main.command()
@config_option
def worker(config_path: Path | None) -> None:
    """Run the always-on daemon (Faust agents on the configured Kafka and database)."""
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.logging_setup import RedactSecrets
    from monitor.runtime import build_runtime
    from pipelines.worker import run_worker

    settings = settings_from(config_path)
    setup_logging(settings)
    migrate = settings.database_url.startswith("sqlite")
    try:
        runtime = build_runtime(settings, migrate=migrate, own_process=settings.model.own_process)
    except SQLAlchemyError as exc:
        reason = RedactSecrets(settings.secret_values()).redact(str(exc.orig or exc))
        click.echo(f"finmon: database unreachable: {reason.strip()}", err=True)
        sys.exit(3)
    run_worker(settings, runtime)


@main.command()
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

    from ingest.run import ingest_once, run_ingest
    from monitor.db.engine import upgrade as run_upgrade

    settings = settings_from(config_path)
    setup_logging(settings)
    if not settings.ingest.feeds:
        click.echo("finmon: no [[ingest.feeds]] configured", err=True)
        sys.exit(2)
    if settings.database_url.startswith("sqlite"):
        run_upgrade(settings.database_url)
    if output is None:
        asyncio.run(run_ingest(settings))
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    click.echo(asyncio.run(ingest_once(settings, output)))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def replay(file: Path, config_path: Path | None, quiet: bool) -> None:
    """Process a JSONL file of news exactly as the worker would, without Kafka."""
    from monitor.replay import replay as run_replay
    from monitor.runtime import build_runtime

    settings = settings_from(config_path)
    setup_logging(settings)
    runtime = build_runtime(settings, migrate=True)
    summary = run_replay(runtime, file, progress=not quiet)
    click.echo(str(summary))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@click.option("--topic", default=None, help="Topic to publish to (default: kafka.input_topic).")
def produce(file: Path, config_path: Path | None, topic: str | None) -> None:
    """Publish a JSONL file of news to Kafka, one message per line (backfills, demos)."""
    from monitor.produce import produce_file

    settings = settings_from(config_path)
    setup_logging(settings)
    count = produce_file(settings.kafka, file, topic or settings.kafka.input_topic)
    click.echo(f"produced {count} messages to {topic or settings.kafka.input_topic}")


@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--hours", default=6.0, show_default=True, help="Hours of news to generate.")
@click.option("--per-hour", default=120, show_default=True, help="Background items per hour.")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--end",
    default=None,
    help="ISO timestamp the feed ends at (default: now).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "rss"]),
    default="jsonl",
    show_default=True,
    help="JSON lines (the input contract) or an RSS 2.0 feed (for `finmon ingest`).",
)
def sample(out: Path, hours: float, per_hour: int, seed: int, end: str | None, fmt: str) -> None:
    """Generate a realistic synthetic news feed (JSONL or RSS) with a negative episode."""
    from monitor.sample import SampleSpec, write_jsonl, write_rss

    if end:
        end_at = datetime.fromisoformat(end)
        if end_at.tzinfo is None:
            raise click.BadParameter("--end needs a timezone, e.g. 2026-01-05T16:00:00+00:00")
    else:
        end_at = datetime.now(UTC).replace(second=0, microsecond=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = SampleSpec(end=end_at, hours=hours, per_hour=per_hour, seed=seed)
    count = (write_rss if fmt == "rss" else write_jsonl)(str(out), spec)
    click.echo(f"wrote {count} news items to {out}")


@main.group()
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


# Commands owned by other packages register here.
from alerts.cli import alerts_command  # noqa: E402
from monitor.model.cli import register as register_model_commands  # noqa: E402

register_model_commands(main)
main.add_command(alerts_command)


@main.command()
@config_option
@click.option(
    "--dimension",
    type=click.Choice(["all", "topic", "ticker"]),
    default="all",
    show_default=True,
    help="Whole market, per topic, or per ticker.",
)
@click.option("--key", default=None, help="One topic or ticker (default: the --top keys).")
@click.option("--window", default="1h", show_default=True, help="One of the [windows] sizes.")
@click.option("--since", default=None, help="24h (back from now) or an ISO time; default: all.")
@click.option(
    "--top",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Without --key: the keys with the most items.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the trend with volume bars and alerts to this PNG file.",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the windows to this CSV file.",
)
def trends(
    config_path: Path | None,
    dimension: str,
    key: str | None,
    window: str,
    since: str | None,
    top: int,
    plot_path: Path | None,
    csv_path: Path | None,
) -> None:
    """Show sentiment trend windows as a table (and a chart or CSV)."""
    from sqlalchemy.exc import SQLAlchemyError

    from monitor import trends as report
    from monitor.db.engine import make_engine
    from monitor.durations import format_duration, parse_duration, parse_since
    from monitor.logging_setup import RedactSecrets

    settings = settings_from(config_path)
    try:
        size = parse_duration(window)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from None
    if size not in settings.windows.sizes:
        sizes = ", ".join(format_duration(s) for s in settings.windows.sizes)
        raise click.BadParameter(f"not a configured window size ({sizes})", param_hint="--window")
    try:
        since_at = parse_since(since, datetime.now(UTC)) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    if dimension == "all" and key is not None:
        raise click.BadParameter("needs --dimension topic or ticker", param_hint="--key")
    query = report.TrendQuery(dimension, size, key=key, since=since_at, top=top)
    engine = make_engine(settings.database_url)
    try:
        frame = report.load_trends(engine, query)
        alerts = report.load_alerts(engine, query, list(frame["key"].unique()))
    except SQLAlchemyError as exc:
        reason = RedactSecrets(settings.secret_values()).redact(str(exc.orig or exc))
        click.echo(
            f"finmon: cannot read trend windows: {reason.strip()} "
            "(is the schema there? run `finmon db upgrade`)",
            err=True,
        )
        sys.exit(3)
    finally:
        engine.dispose()
    click.echo(report.format_table(frame, size))
    if csv_path is not None:
        report.write_csv(frame, csv_path)
        click.echo(f"wrote {len(frame)} windows to {csv_path}")
    if plot_path is not None:
        report.plot_trends(frame, alerts, query, plot_path)
        click.echo(f"wrote the chart to {plot_path}")
