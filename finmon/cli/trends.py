"""`finmon trends`: trend windows as a table, a CSV file or a chart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from finmon.cli.options import config_option, database_error, settings_from


@click.command()
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

    from alerts.spans import load_alert_spans
    from monitor import trends as report
    from monitor.db.engine import make_engine
    from monitor.durations import format_duration, parse_duration, parse_since

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
        keys = list(frame["key"].unique())
        alerts = load_alert_spans(engine, query.dimension, keys, query.since)
    except SQLAlchemyError as exc:
        database_error(
            settings,
            exc,
            "cannot read trend windows",
            " (is the schema there? run `finmon db upgrade`)",
        )
    finally:
        engine.dispose()
    click.echo(report.format_table(frame, size))
    if csv_path is not None:
        report.write_csv(frame, csv_path)
        click.echo(f"wrote {len(frame)} windows to {csv_path}")
    if plot_path is not None:
        report.plot_trends(frame, alerts, query, plot_path)
        click.echo(f"wrote the chart to {plot_path}")
