"""The notification document: one JSON shape for every channel (the webhook body, the log
line, the source of the email). Pure; rendered once when a delivery is stored."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from alerts.detection import Figures
from alerts.lifecycle import Kind
from alerts.outbox import StoredAlert
from monitor.durations import format_duration
from monitor.windows import WindowKey

SCHEMA = "finmon.alert/v1"


def figures_document(window: WindowKey, figures: Figures, metric: str) -> dict[str, Any]:
    """The stored figures of an alert: the window they describe and its numbers."""
    return {
        "window_start": window.window_start.isoformat(),
        "window_end": window.window_end.isoformat(),
        "window_seconds": window.window_seconds,
        "metric": metric,
        **figures.as_dict(),
    }


def summary(alert: StoredAlert) -> str:
    """One line for a subject or a chat message, e.g.
    `ticker AAPL: 80% bearish (4/5) in 5m vs 15% baseline`."""
    f = alert.figures
    window = format_duration(timedelta(seconds=alert.window_seconds))
    subject = "market" if alert.dimension == "all" else f"{alert.dimension} {alert.key}"
    return (
        f"{subject}: {f['negative_share']:.0%} bearish ({f['n_bearish']}/{f['n_total']}) "
        f"in {window} vs {f['baseline_share']:.0%} baseline"
    )


def notification_document(
    *,
    alert: StoredAlert,
    kind: Kind,
    reason: str,
    headlines: list[dict[str, Any]],
    channel: str,
    idempotency_key: str,
    now: datetime,
) -> dict[str, Any]:
    resolved = kind is Kind.RESOLVED
    return {
        "schema": SCHEMA,
        "kind": str(kind),
        "idempotency_key": idempotency_key,
        "channel": channel,
        "created_at": now.isoformat(),
        "summary": summary(alert),
        "reason": reason,
        "alert": {
            "id": alert.id,
            "fingerprint": alert.fingerprint,
            "rule": alert.rule,
            "dimension": alert.dimension,
            "key": alert.key,
            "severity": alert.state.severity,
            "state": "resolved" if resolved else "firing",
            "started_at": alert.state.started_at.isoformat(),
            "resolved_at": now.isoformat() if resolved else None,
        },
        "figures": alert.figures,
        "headlines": headlines,
    }
