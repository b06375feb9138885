"""The alerts' SQL tables: `alerts` (one row per incident) and `alert_deliveries` (the outbox).

Registered on the shared `Base.metadata` (see `monitor.db.metadata`), migrated by
`migrations/versions/0002_alerts.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db.models import Base, UTCDateTime

_FIRING = text("state = 'firing'")


class AlertRow(Base):
    """One incident of one fingerprint: opened firing, closed resolved, never reopened."""

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
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    anomalous_until: Mapped[datetime] = mapped_column(UTCDateTime)
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
    )


class AlertDeliveryRow(Base):
    """One notification to one channel; written with its alert, before anything is sent."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
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
    )
