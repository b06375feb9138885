"""SQL persistence of alerts and their deliveries: the outbox.

Alerts and the deliveries they need are written in the evaluating transaction, before
anything is sent. Sending then goes through `claim` (a conditional update, so two
dispatchers never send the same delivery at once), the channel, and `mark_sent` only after
the receiver accepted. A dispatcher that dies mid-send leaves a claim that expires, and the
delivery is sent again with the same idempotency key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from alerts.lifecycle import AlertState, Kind
from alerts.models import AlertDeliveryRow, AlertRow
from monitor.db.models import table

_alerts = table(AlertRow)
_deliveries = table(AlertDeliveryRow)


class ConcurrentUpdate(Exception):
    """Another worker changed the alert first; re-read and evaluate again."""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """A firing alert as stored, with what is needed to update it safely."""

    id: int
    fingerprint: str
    rule: str
    dimension: str
    key: str
    window_seconds: int
    state: AlertState
    figures: dict[str, Any]
    notifications: int
    revision: int


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    id: int
    channel: str
    kind: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int


def _stored(row: Mapping[str, Any]) -> StoredAlert:
    return StoredAlert(
        id=row["id"],
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        dimension=row["dimension"],
        key=row["key"],
        window_seconds=row["window_seconds"],
        state=AlertState(
            severity=row["severity"],
            started_at=row["started_at"],
            last_notified_at=row["last_notified_at"],
            last_window_start=row["last_window_start"],
            anomalous_until=row["anomalous_until"],
        ),
        figures=row["figures"],
        notifications=row["notifications"],
        revision=row["revision"],
    )


def firing_alerts(
    conn: Connection, fingerprints: Collection[str] | None = None
) -> dict[str, StoredAlert]:
    """The firing alerts, by fingerprint; all of them when `fingerprints` is None."""
    query = select(_alerts).where(_alerts.c.state == "firing")
    if fingerprints is not None:
        if not fingerprints:
            return {}
        query = query.where(_alerts.c.fingerprint.in_(sorted(fingerprints)))
    return {row.fingerprint: _stored(dict(row._mapping)) for row in conn.execute(query)}


def open_alert(
    conn: Connection,
    *,
    fingerprint: str,
    rule: str,
    dimension: str,
    key: str,
    window_seconds: int,
    state: AlertState,
    figures: dict[str, Any],
    now: datetime,
) -> StoredAlert:
    """Insert a firing alert and count its first notification. A concurrent insert of the
    same fingerprint violates `uq_alerts_firing_fingerprint` and fails the transaction."""
    values = {
        "fingerprint": fingerprint,
        "rule": rule,
        "dimension": dimension,
        "key": key,
        "window_seconds": window_seconds,
        "severity": state.severity,
        "state": "firing",
        "started_at": state.started_at,
        "last_notified_at": state.last_notified_at,
        "last_window_start": state.last_window_start,
        "anomalous_until": state.anomalous_until,
        "figures": figures,
        "notifications": 1,
        "revision": 0,
        "updated_at": now,
    }
    alert_id = conn.execute(insert(_alerts).returning(_alerts.c.id), values).scalar_one()
    return _stored({"id": alert_id, **values})


def save_alert(
    conn: Connection,
    alert: StoredAlert,
    after: AlertState | None,
    figures: dict[str, Any],
    now: datetime,
    *,
    notified: bool,
) -> StoredAlert:
    """Write the alert's new state (`None`: resolved) and whether it notifies, unless
    another worker changed the alert since it was read."""
    state = after or alert.state
    values: dict[str, Any] = {
        "severity": state.severity,
        "last_notified_at": state.last_notified_at,
        "last_window_start": state.last_window_start,
        "anomalous_until": state.anomalous_until,
        "figures": figures,
        "notifications": alert.notifications + notified,
        "revision": alert.revision + 1,
        "updated_at": now,
    }
    if after is None:
        values |= {"state": "resolved", "resolved_at": now, "last_notified_at": now}
    changed = conn.execute(
        update(_alerts)
        .where(_alerts.c.id == alert.id, _alerts.c.revision == alert.revision)
        .values(values)
    ).rowcount
    if changed != 1:
        raise ConcurrentUpdate(f"alert {alert.id} changed concurrently")
    return replace(
        alert,
        state=state,
        figures=figures,
        notifications=values["notifications"],
        revision=values["revision"],
    )


def idempotency_key(alert: StoredAlert, sequence: int, channel: str) -> str:
    """Stable per (incident, notification, channel): a resend carries the same key.

    Each incident is its own `alerts` row, so the row id tells incidents apart even when one
    evaluation resolves an alert and fires it again at the same instant."""
    raw = f"{alert.fingerprint}|{alert.id}|{sequence}|{channel}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def enqueue(
    conn: Connection,
    alert: StoredAlert,
    kind: Kind,
    channels: Sequence[str],
    payload_for: Callable[[str, str], dict[str, Any]],
    now: datetime,
) -> None:
    """Store one pending delivery per channel for the alert's latest notification.

    `payload_for(channel, idempotency_key)` renders each document now, so a retry later
    sends exactly the same content."""
    rows = []
    for channel in channels:
        key = idempotency_key(alert, alert.notifications, channel)
        rows.append(
            {
                "alert_id": alert.id,
                "channel": channel,
                "kind": str(kind),
                "idempotency_key": key,
                "payload": payload_for(channel, key),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    if rows:
        conn.execute(insert(_deliveries), rows)


def due_deliveries(conn: Connection, now: datetime, limit: int) -> list[PendingDelivery]:
    """Pending deliveries whose next attempt is due, oldest first."""
    d = _deliveries.c
    query = (
        select(d.id, d.channel, d.kind, d.idempotency_key, d.payload, d.attempts)
        .where(d.status == "pending", d.next_attempt_at <= now)
        .order_by(d.next_attempt_at, d.id)
        .limit(limit)
    )
    return [PendingDelivery(*row) for row in conn.execute(query)]


def claim(conn: Connection, delivery: PendingDelivery, now: datetime, lease: timedelta) -> bool:
    """Take `delivery` for one attempt (counted now, so a crash counts too); False if another
    dispatcher took it first."""
    d = _deliveries.c
    changed = conn.execute(
        update(_deliveries)
        .where(
            d.id == delivery.id,
            d.status == "pending",
            d.attempts == delivery.attempts,
            d.next_attempt_at <= now,
        )
        .values(attempts=delivery.attempts + 1, next_attempt_at=now + lease)
    ).rowcount
    return changed == 1


def mark_sent(conn: Connection, delivery_id: int, now: datetime) -> None:
    conn.execute(
        update(_deliveries)
        .where(_deliveries.c.id == delivery_id)
        .values(status="sent", sent_at=now, next_attempt_at=None, last_error=None)
    )


def mark_retry(conn: Connection, delivery_id: int, at: datetime, error: str) -> None:
    conn.execute(
        update(_deliveries)
        .where(_deliveries.c.id == delivery_id)
        .values(next_attempt_at=at, last_error=error)
    )


def mark_failed(conn: Connection, delivery_id: int, error: str) -> None:
    conn.execute(
        update(_deliveries)
        .where(_deliveries.c.id == delivery_id)
        .values(status="failed", next_attempt_at=None, last_error=error)
    )


def list_alerts(
    conn: Connection, since: datetime, state: str | None = None
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Alerts active at any time since `since` (newest first), each with its deliveries."""
    a = _alerts.c
    query = select(_alerts).where(
        or_(a.started_at >= since, a.resolved_at.is_(None), a.resolved_at >= since)
    )
    if state is not None:
        query = query.where(a.state == state)
    alerts = [dict(row._mapping) for row in conn.execute(query.order_by(a.started_at.desc()))]
    deliveries: dict[int, list[dict[str, Any]]] = {alert["id"]: [] for alert in alerts}
    d = _deliveries.c
    ids = list(deliveries)
    for offset in range(0, len(ids), 500):
        rows = conn.execute(
            select(d.alert_id, d.channel, d.kind, d.status, d.attempts, d.last_error)
            .where(d.alert_id.in_(ids[offset : offset + 500]))
            .order_by(d.id)
        )
        for row in rows:
            deliveries[row.alert_id].append(dict(row._mapping))
    return [(alert, deliveries[alert["id"]]) for alert in alerts]
