"""SQL persistence of incidents, their notices and the deliveries that carry them: the outbox.

Incidents and the notices they need are written in the evaluating transaction, before
anything is sent. A group flush (alerts/grouping.py) then turns the notices waiting in a
group into one delivery per channel, rendered once. Sending goes through `claim` (a
conditional update, so two dispatchers never send the same delivery at once), the channel,
and `mark_sent` only after the receiver accepted. A dispatcher that dies mid-send leaves a
claim that expires, and the delivery is sent again with the same idempotency key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from alerts.lifecycle import Incident, Kind
from alerts.models import AlertDeliveryRow, AlertNoticeRow, AlertRow
from monitor.db.models import table

_alerts = table(AlertRow)
_notices = table(AlertNoticeRow)
_deliveries = table(AlertDeliveryRow)
_CHUNK = 500


class ConcurrentUpdate(Exception):
    """Another worker changed the incident first; re-read and evaluate again."""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An incident as stored, with what is needed to update it safely."""

    id: int
    fingerprint: str
    rule: str
    dimension: str
    key: str
    window_seconds: int
    incident: Incident
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


@dataclass(frozen=True, slots=True)
class WaitingGroup:
    """A group with notices waiting for their flush."""

    group_key: str
    channel: str
    oldest: datetime
    last_flush: datetime | None


@dataclass(frozen=True, slots=True)
class Notice:
    id: int
    route: int
    kind: str
    reason: str
    created_at: datetime
    alert: StoredAlert


def _stored(row: Mapping[str, Any]) -> StoredAlert:
    return StoredAlert(
        id=row["id"],
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        dimension=row["dimension"],
        key=row["key"],
        window_seconds=row["window_seconds"],
        incident=Incident(
            episode_start=row["episode_start"],
            anomalous_until=row["anomalous_until"],
            severity=row["severity"],
            notified_severity=row["notified_severity"],
            detected_at=row["started_at"],
            last_notified_at=row["last_notified_at"],
            calm=bool(row["calm"]),
            resolved_at=row["resolved_at"],
            suppressed=row["suppressed_reason"],
        ),
        figures=row["figures"],
        notifications=row["notifications"],
        revision=row["revision"],
    )


def _incident_values(incident: Incident) -> dict[str, Any]:
    return {
        "severity": incident.severity,
        "state": "firing" if incident.open else "resolved",
        "started_at": incident.detected_at,
        "resolved_at": incident.resolved_at,
        "last_notified_at": incident.last_notified_at,
        "episode_start": incident.episode_start,
        "anomalous_until": incident.anomalous_until,
        "notified_severity": incident.notified_severity,
        "calm": incident.calm,
        "suppressed_reason": incident.suppressed,
    }


def incidents_near(
    conn: Connection, fingerprints: Collection[str], since: datetime
) -> dict[str, list[StoredAlert]]:
    """By fingerprint: the open incidents, and those whose episode ended at or after `since`
    (event time), oldest episode first: every incident a window from `since` on can join."""
    found: dict[str, list[StoredAlert]] = {}
    a = _alerts.c
    names = sorted(fingerprints)
    for offset in range(0, len(names), _CHUNK):
        query = (
            select(_alerts)
            .where(
                a.fingerprint.in_(names[offset : offset + _CHUNK]),
                or_(a.state == "firing", a.anomalous_until >= since),
            )
            .order_by(a.episode_start, a.id)
        )
        for row in conn.execute(query):
            found.setdefault(row.fingerprint, []).append(_stored(dict(row._mapping)))
    return found


def detected_since(conn: Connection, since: datetime) -> tuple[int, int]:
    """How many incidents were detected since `since`, and how many of them are suppressed."""
    a = _alerts.c
    total, suppressed = conn.execute(
        select(func.count(), func.count(a.suppressed_reason)).where(a.started_at >= since)
    ).one()
    return int(total), int(suppressed)


def open_incidents(conn: Connection) -> list[StoredAlert]:
    """Every incident not resolved yet."""
    query = select(_alerts).where(_alerts.c.state == "firing").order_by(_alerts.c.id)
    return [_stored(dict(row._mapping)) for row in conn.execute(query)]


def open_alert(
    conn: Connection,
    *,
    fingerprint: str,
    rule: str,
    dimension: str,
    key: str,
    window_seconds: int,
    incident: Incident,
    figures: dict[str, Any],
    notified: bool,
    now: datetime,
) -> StoredAlert:
    """Insert a new incident. A concurrent insert of an open incident of the same
    fingerprint violates `uq_alerts_firing_fingerprint` and fails the transaction."""
    values = {
        "fingerprint": fingerprint,
        "rule": rule,
        "dimension": dimension,
        "key": key,
        "window_seconds": window_seconds,
        **_incident_values(incident),
        "figures": figures,
        "notifications": int(notified),
        "revision": 0,
        "updated_at": now,
    }
    alert_id = conn.execute(insert(_alerts).returning(_alerts.c.id), values).scalar_one()
    return _stored({"id": alert_id, **values})


def save_alert(
    conn: Connection,
    alert: StoredAlert,
    incident: Incident,
    figures: dict[str, Any],
    now: datetime,
    *,
    notified: bool,
) -> StoredAlert:
    """Write the incident's new state, unless another worker changed it since it was read."""
    values: dict[str, Any] = {
        **_incident_values(incident),
        "figures": figures,
        "notifications": alert.notifications + notified,
        "revision": alert.revision + 1,
        "updated_at": now,
    }
    changed = conn.execute(
        update(_alerts)
        .where(_alerts.c.id == alert.id, _alerts.c.revision == alert.revision)
        .values(values)
    ).rowcount
    if changed != 1:
        raise ConcurrentUpdate(f"alert {alert.id} changed concurrently")
    return replace(
        alert,
        incident=incident,
        figures=figures,
        notifications=values["notifications"],
        revision=values["revision"],
    )


def add_notices(
    conn: Connection,
    alert: StoredAlert,
    kind: Kind,
    reason: str,
    targets: Sequence[tuple[int, str, str]],
    now: datetime,
) -> None:
    """Queue one notice of `alert` per (route, group key, channel) in `targets`."""
    rows = [
        {
            "alert_id": alert.id,
            "channel": channel,
            "route": route,
            "group_key": group,
            "kind": str(kind),
            "reason": reason,
            "created_at": now,
            "delivery_id": None,
        }
        for route, group, channel in targets
    ]
    if rows:
        conn.execute(insert(_notices), rows)


def waiting_groups(conn: Connection) -> list[WaitingGroup]:
    """Every group with notices waiting, with its oldest notice and its last flush."""
    n, d = _notices.c, _deliveries.c
    last_flush = (
        select(func.max(d.created_at))
        .where(d.group_key == n.group_key, d.channel == n.channel)
        .scalar_subquery()
    )
    query = (
        select(n.group_key, n.channel, func.min(n.created_at), last_flush)
        .where(n.delivery_id.is_(None))
        .group_by(n.group_key, n.channel)
    )
    return [WaitingGroup(*row) for row in conn.execute(query)]


def waiting_notices(conn: Connection, group: str, channel: str) -> list[Notice]:
    """The notices waiting in one group for one channel, oldest first, with their alerts."""
    n = _notices.c
    query = (
        select(
            n.id.label("notice_id"),
            n.route.label("notice_route"),
            n.kind.label("notice_kind"),
            n.reason.label("notice_reason"),
            n.created_at.label("notice_created_at"),
            *_alerts.columns,
        )
        .join(_alerts, _alerts.c.id == n.alert_id)
        .where(n.group_key == group, n.channel == channel, n.delivery_id.is_(None))
        .order_by(n.id)
    )
    notices = []
    for row in conn.execute(query):
        fields = row._mapping
        notices.append(
            Notice(
                fields["notice_id"],
                fields["notice_route"],
                fields["notice_kind"],
                fields["notice_reason"],
                fields["notice_created_at"],
                _stored(dict(fields)),
            )
        )
    return notices


def delivery_key(group: str, channel: str, notice_ids: Sequence[int]) -> str:
    """Stable per message: the same notices to the same channel give the same key, so two
    dispatchers flushing one group at once cannot both store it (the key is unique)."""
    raw = f"{group}|{channel}|{','.join(map(str, sorted(notice_ids)))}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def add_delivery(
    conn: Connection,
    *,
    group: str,
    channel: str,
    kind: Kind,
    idempotency_key: str,
    payload: dict[str, Any],
    notice_ids: Sequence[int],
    now: datetime,
) -> int:
    """Store one pending message and attach the notices it carries."""
    delivery_id = conn.execute(
        insert(_deliveries).returning(_deliveries.c.id),
        {
            "channel": channel,
            "group_key": group,
            "kind": str(kind),
            "idempotency_key": idempotency_key,
            "payload": payload,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    ).scalar_one()
    attached = conn.execute(
        update(_notices)
        .where(_notices.c.id.in_(list(notice_ids)), _notices.c.delivery_id.is_(None))
        .values(delivery_id=delivery_id)
    ).rowcount
    if attached != len(notice_ids):
        raise ConcurrentUpdate(f"group {group} was flushed concurrently")
    return int(delivery_id)


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
    """Incidents active at any time since `since` (processing or event time, newest first),
    each with the deliveries that carried its notices (or the notice, while it waits)."""
    a = _alerts.c
    query = select(_alerts).where(
        or_(
            a.started_at >= since,
            a.anomalous_until >= since,
            a.resolved_at.is_(None),
            a.resolved_at >= since,
        )
    )
    if state is not None:
        query = query.where(a.state == state)
    alerts = [dict(row._mapping) for row in conn.execute(query.order_by(a.episode_start.desc()))]
    deliveries: dict[int, list[dict[str, Any]]] = {alert["id"]: [] for alert in alerts}
    n, d = _notices.c, _deliveries.c
    ids = list(deliveries)
    for offset in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            select(n.alert_id, n.channel, n.kind, d.status, d.attempts, d.last_error)
            .select_from(_notices.outerjoin(_deliveries, d.id == n.delivery_id))
            .where(n.alert_id.in_(ids[offset : offset + _CHUNK]))
            .order_by(n.id)
        )
        for row in rows:
            entry = dict(row._mapping)
            entry["status"] = entry["status"] or "grouping"
            entry["attempts"] = entry["attempts"] or 0
            deliveries[entry.pop("alert_id")].append(entry)
    return [(alert, deliveries[alert["id"]]) for alert in alerts]
