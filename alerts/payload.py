"""The notification document: one JSON shape for every channel (the webhook body, the log
line, the source of the email). Pure; rendered once when a group is flushed, so every retry
sends the same bytes. The schema is versioned and documented in docs/alerts.md.

`finmon.alert-group/v2` (v1 carried one alert): a message is one flush of one group, and
carries each of the group's alerts that changed since the previous flush, each with what
changed (`kind`, `reason`), its event-time window and its detection (processing) time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from alerts.detection import Figures
from alerts.lifecycle import Kind
from alerts.outbox import StoredAlert
from monitor.durations import format_duration
from monitor.windows import WindowKey

SCHEMA = "finmon.alert-group/v2"


def figures_document(window: WindowKey, figures: Figures, metric: str) -> dict[str, Any]:
    """The stored figures of an alert: the window they describe and its numbers."""
    return {
        "window_start": window.window_start.isoformat(),
        "window_end": window.window_end.isoformat(),
        "window_seconds": window.window_seconds,
        "metric": metric,
        **figures.as_dict(),
    }


def subject(alert: StoredAlert) -> str:
    return "market" if alert.dimension == "all" else f"{alert.dimension} {alert.key}"


def summary(alert: StoredAlert) -> str:
    """One line for a subject or a chat message, e.g.
    `ticker AAPL: 80% bearish (4/5) in 5m vs 15% baseline`."""
    f = alert.figures
    window = format_duration(timedelta(seconds=alert.window_seconds))
    return (
        f"{subject(alert)}: {f['negative_share']:.0%} bearish ({f['n_bearish']}/{f['n_total']}) "
        f"in {window} vs {f['baseline_share']:.0%} baseline"
    )


def alert_document(
    alert: StoredAlert, kind: str, reason: str, headlines: list[dict[str, Any]]
) -> dict[str, Any]:
    """One alert of a message: what changed, its episode in event time, its figures."""
    incident = alert.incident
    return {
        "id": alert.id,
        "fingerprint": alert.fingerprint,
        "rule": alert.rule,
        "dimension": alert.dimension,
        "key": alert.key,
        "kind": kind,
        "reason": reason,
        "summary": summary(alert),
        "severity": incident.severity,
        "state": "firing" if incident.open else "resolved",
        "window": {
            "start": incident.episode_start.isoformat(),
            "end": incident.anomalous_until.isoformat(),
            "seconds": alert.window_seconds,
        },
        "detected_at": incident.detected_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "figures": alert.figures,
        "headlines": headlines,
    }


def group_summary(alerts: Sequence[Mapping[str, Any]]) -> str:
    """One line for a whole message: the first alert, and how many more."""
    first = alerts[0]["summary"]
    return first if len(alerts) == 1 else f"{first} (+{len(alerts) - 1} more)"


def message_document(
    *,
    kind: Kind,
    alerts: Sequence[dict[str, Any]],
    group_key: str,
    labels: Mapping[str, str],
    route: int,
    channel: str,
    idempotency_key: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "kind": str(kind),
        "idempotency_key": idempotency_key,
        "channel": channel,
        "created_at": now.isoformat(),
        "group": {"key": group_key, "route": route, "labels": dict(labels)},
        "summary": group_summary(alerts),
        "alerts": list(alerts),
    }
