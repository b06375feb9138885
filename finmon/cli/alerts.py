"""`finmon alerts`: the incidents of a period, their episode in event time, when they were
detected (processing time), and the status of their deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pandas as pd

from finmon.cli.options import config_option, settings_from
from monitor.durations import format_duration, parse_since

_MAX_ERROR_CHARS = 60


def _deliveries(deliveries: list[dict[str, Any]]) -> str:
    parts = []
    for d in deliveries:
        attempts = "" if d["status"] == "sent" else f" x{d['attempts']}"
        parts.append(f"{d['kind']}>{d['channel']}:{d['status']}{attempts}")
    return ", ".join(parts) or "-"


def _last_error(deliveries: list[dict[str, Any]]) -> str:
    errors = [d["last_error"] for d in deliveries if d["last_error"]]
    return errors[-1][:_MAX_ERROR_CHARS] if errors else ""


def _minute(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else ""


def alerts_table(rows: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> pd.DataFrame:
    """One line per alert: what fired, on which figures, and where its notifications are."""
    return pd.DataFrame(
        [
            {
                "id": alert["id"],
                "state": alert["state"],
                "severity": alert["severity"],
                "rule": alert["rule"],
                "key": "all"
                if alert["dimension"] == "all"
                else f"{alert['dimension']}:{alert['key']}",
                "window": format_duration(timedelta(seconds=alert["window_seconds"])),
                "episode, event time (UTC)": f"{_minute(alert['episode_start'])} to "
                f"{alert['anomalous_until'].strftime('%H:%M')}",
                "detected (UTC)": _minute(alert["started_at"]),
                "resolved (UTC)": _minute(alert["resolved_at"]),
                "bearish": f"{alert['figures']['negative_share']:.0%}",
                "baseline": f"{alert['figures']['baseline_share']:.0%}",
                "score": round(alert["figures"]["score"], 1),
                "deliveries": _deliveries(deliveries)
                if not alert["suppressed_reason"]
                else "not delivered: " + alert["suppressed_reason"].split(":")[0],
                "last error": _last_error(deliveries),
            }
            for alert, deliveries in rows
        ]
    )


@click.command("alerts")
@config_option
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="Alerts active since: a duration back from now (24h, 7d) or an ISO timestamp.",
)
@click.option("--state", type=click.Choice(["firing", "resolved"]), default=None)
def alerts_command(config_path: Path | None, since: str, state: str | None) -> None:
    """List alerts and the delivery status of their notifications."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from alerts.outbox import list_alerts
    from monitor.db.engine import make_engine

    try:
        since_at = parse_since(since, datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    settings = settings_from(config_path)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = list_alerts(conn, since_at, state)
    except (OperationalError, ProgrammingError) as exc:
        raise click.ClickException(
            f"cannot read alerts ({type(exc.orig).__name__}); is the schema up to date? "
            "Run `finmon db upgrade`."
        ) from None
    finally:
        engine.dispose()
    if not rows:
        label = f"{state} alerts" if state else "alerts"
        click.echo(f"no {label} since {since_at.isoformat(timespec='minutes')}")
        return
    with pd.option_context("display.max_colwidth", 200, "display.width", 250):
        click.echo(alerts_table(rows).to_string(index=False))
