"""The alerts' SQL tables: `alerts` (one row per incident), `alert_notices` (each
notification an incident needs, per channel) and `alert_deliveries` (the outbox: one message
per group flush and channel, carrying one or more notices).

Registered on the shared `Base.metadata` (see `monitor.db.metadata`), migrated by
`migrations/versions/0002_alerts.py` and `0005_incidents_in_event_time.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db.models import Base, UTCDateTime

_FIRING = text("state = 'firing'")


class AlertRow(Base):
    """One incident: one episode of one fingerprint (rule, dimension, key), in event time.

    Event time: `episode_start`..`anomalous_until`, the span of its anomalous windows.
    Processing time: `started_at` (when it was detected), `resolved_at`, `last_notified_at`."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    dimension: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    window_seconds: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """Processing time: when the incident was detected (its first window fired)."""
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    episode_start: Mapped[datetime] = mapped_column(UTCDateTime)
    """Event time: the start of the episode's earliest anomalous window."""
    anomalous_until: Mapped[datetime] = mapped_column(UTCDateTime)
    """Event time: the end of the episode's newest anomalous window."""
    notified_severity: Mapped[str | None] = mapped_column(String(16))
    """The highest severity notified; null for an incident that never notifies (history)."""
    calm: Mapped[bool] = mapped_column(Boolean)
    """A window after the episode closed normal: it resolves unless it fires again."""
    suppressed_reason: Mapped[str | None] = mapped_column(Text)
    """Why the incident is stored but never delivered (e.g. history older than
    `alerts.notify_max_age`)."""
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The peak window's figures: counts, negative share, baseline, z-scores."""
    notifications: Mapped[int] = mapped_column(Integer)
    """How many notifications were decided so far; numbers their idempotency keys."""
    revision: Mapped[int] = mapped_column(Integer)
    """Optimistic lock: two workers updating one alert cannot both win."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("state IN ('firing', 'resolved')", name="state"),
        # At most one firing alert per fingerprint, even with concurrent workers.
        Index(
            "uq_alerts_firing_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=_FIRING,
            postgresql_where=_FIRING,
        ),
        Index("ix_alerts_started_at", "started_at"),
        Index("ix_alerts_fingerprint_episode", "fingerprint", "anomalous_until"),
    )


class AlertNoticeRow(Base):
    """One notification of one incident for one channel, waiting for its group's flush
    (`delivery_id` null) or carried by the delivery that sent it."""

    __tablename__ = "alert_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(64))
    route: Mapped[int] = mapped_column(Integer)
    """The index of the route in `[[alerts.routes]]` that groups it."""
    group_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivery_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("alert_deliveries.id", ondelete="CASCADE"), index=True
    )

    __table_args__ = (
        CheckConstraint("kind IN ('firing', 'escalated', 'repeat', 'resolved')", name="kind"),
        Index("ix_alert_notices_group", "group_key", "delivery_id"),
    )


class AlertDeliveryRow(Base):
    """One message to one channel: a group flush carrying one or more notices. Its payload
    is rendered when it is stored, so every retry sends the same bytes."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    """`firing` while any alert it carries is open, else `resolved` (`repeat`: rows from
    before grouping)."""
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When a pending delivery is due; while one is being sent, when its claim expires."""
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("kind IN ('firing', 'repeat', 'resolved')", name="kind"),
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
        Index("ix_alert_deliveries_group", "group_key", "created_at"),
    )
