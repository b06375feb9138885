"""incidents in event time: episodes, flap damping, history, grouped deliveries

Revision ID: 0005
Revises: 0006 (written against 0003; re-chained after 0006, which landed first)
Create Date: 2026-12-02 08:00:00.000000

Existing rows are migrated forward:

- `alerts` gain their episode in event time (`episode_start`, from the start of the window
  their figures describe), `notified_severity` (their severity: they notified), `calm` and
  `suppressed_reason`; `last_window_start` goes (windows are now judged once closed).
- `alert_deliveries` become messages (one per group flush and channel): each existing row
  keeps its payload and status, gets a group of its own (`legacy:<alert id>`), and one
  `alert_notices` row links it to its alert, so `finmon alerts` and `v_alert_history` show
  it as before.
- `v_alert_history` is recreated: deliveries are found through the notices, and it gains
  the episode's event-time span and the suppression reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import monitor.db.models

revision = "0005"
down_revision = "0006"
branch_labels = None
depends_on = None

_EPOCH = "'1970-01-01 00:00:00'"


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _alert_history(postgresql: bool, *, grouped: bool = True) -> str:
    """The view as of this revision (`grouped`), or as 0003 made it (for the downgrade)."""
    if postgresql:
        seconds = "CAST(EXTRACT(EPOCH FROM (a.resolved_at - a.started_at)) AS DOUBLE PRECISION)"
        channels = "string_agg(DISTINCT d.channel, ',' ORDER BY d.channel)"

        def number(key: str) -> str:
            return f"CAST(a.figures ->> '{key}' AS DOUBLE PRECISION)"
    else:
        seconds = "round((julianday(a.resolved_at) - julianday(a.started_at)) * 86400.0, 3)"
        channels = "group_concat(DISTINCT d.channel)"

        def number(key: str) -> str:
            return f"CAST(json_extract(a.figures, '$.{key}') AS DOUBLE PRECISION)"

    def deliveries(status: str) -> str:
        return f"SUM(CASE WHEN d.status = '{status}' THEN 1 ELSE 0 END)"

    if grouped:
        through = """
        JOIN alert_notices y ON y.delivery_id = x.id
        WHERE y.alert_id = a.id AND x.last_error IS NOT NULL"""
        extra = ",\n    a.episode_start, a.anomalous_until AS episode_end, a.suppressed_reason"
        source = """(
    SELECT DISTINCT n.alert_id, x.id, x.channel, x.status, x.sent_at
    FROM alert_notices n JOIN alert_deliveries x ON x.id = n.delivery_id
)"""
    else:
        through = "\n        WHERE x.alert_id = a.id AND x.last_error IS NOT NULL"
        extra = ""
        source = "alert_deliveries"
    return f"""
SELECT
    a.id AS alert_id, a.rule, a.dimension, a.key, a.window_seconds, a.severity, a.state,
    a.started_at, a.resolved_at,
    {seconds} AS duration_seconds,
    a.notifications,
    {number("negative_share")} AS negative_share,
    {number("baseline_share")} AS baseline_share,
    {number("score")} AS score,
    COUNT(d.id) AS deliveries,
    {deliveries("sent")} AS deliveries_sent,
    {deliveries("pending")} AS deliveries_pending,
    {deliveries("failed")} AS deliveries_failed,
    CASE
        WHEN COUNT(d.id) = 0 THEN 'none'
        WHEN {deliveries("failed")} > 0 THEN 'failed'
        WHEN {deliveries("pending")} > 0 THEN 'pending'
        ELSE 'sent'
    END AS delivery_status,
    {channels} AS channels,
    MAX(d.sent_at) AS last_sent_at,
    (
        SELECT x.last_error FROM alert_deliveries x{through}
        ORDER BY x.id DESC LIMIT 1
    ) AS last_error{extra}
FROM alerts a
LEFT JOIN {source} d ON d.alert_id = a.id
GROUP BY a.id"""  # noqa: S608 (constant fragments only)


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    op.execute("DROP VIEW IF EXISTS v_alert_history")

    # alerts: add the event-time episode and the new state, backfilled from each row
    with op.batch_alter_table("alerts", recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column(
                "episode_start",
                monitor.db.models.UTCDateTime(timezone=True),
                nullable=False,
                server_default=sa.text(_EPOCH),
            )
        )
        batch_op.add_column(sa.Column("notified_severity", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("calm", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("suppressed_reason", sa.Text(), nullable=True))
    alerts = sa.table(
        "alerts",
        sa.column("id", sa.Integer),
        sa.column("figures", sa.JSON),
        sa.column("last_window_start", monitor.db.models.UTCDateTime(timezone=True)),
        sa.column("episode_start", monitor.db.models.UTCDateTime(timezone=True)),
        sa.column("severity", sa.String),
        sa.column("notified_severity", sa.String),
    )
    for alert_id, figures, last_window_start, severity in bind.execute(
        sa.select(alerts.c.id, alerts.c.figures, alerts.c.last_window_start, alerts.c.severity)
    ).all():
        start = (figures or {}).get("window_start")
        episode_start = _aware(datetime.fromisoformat(start)) if start else last_window_start
        bind.execute(
            alerts.update()
            .where(alerts.c.id == alert_id)
            .values(
                episode_start=min(episode_start, _aware(last_window_start)),
                notified_severity=severity,
            )
        )
    if postgresql:
        op.alter_column("alerts", "episode_start", server_default=None)
        op.alter_column("alerts", "calm", server_default=None)
        op.drop_column("alerts", "last_window_start")
    else:  # SQLite >= 3.35 drops a column in place (a batch copy would cascade-delete)
        op.execute("ALTER TABLE alerts DROP COLUMN last_window_start")
    op.create_index("ix_alerts_fingerprint_episode", "alerts", ["fingerprint", "anomalous_until"])

    # alert_deliveries become messages; remember which alert each one was for
    deliveries = sa.table(
        "alert_deliveries",
        sa.column("id", sa.Integer),
        sa.column("alert_id", sa.Integer),
        sa.column("channel", sa.String),
        sa.column("kind", sa.String),
        sa.column("created_at", monitor.db.models.UTCDateTime(timezone=True)),
        sa.column("group_key", sa.String),
    )
    legacy = bind.execute(
        sa.select(
            deliveries.c.id,
            deliveries.c.alert_id,
            deliveries.c.channel,
            deliveries.c.kind,
            deliveries.c.created_at,
        )
    ).all()
    with op.batch_alter_table("alert_deliveries") as batch_op:
        batch_op.add_column(sa.Column("group_key", sa.String(length=64), nullable=True))
    bind.execute(
        deliveries.update().values(
            group_key=sa.literal("legacy:") + sa.cast(deliveries.c.alert_id, sa.String)
        )
    )
    with op.batch_alter_table("alert_deliveries") as batch_op:
        batch_op.alter_column("group_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_index("ix_alert_deliveries_alert_id")
        batch_op.drop_constraint("fk_alert_deliveries_alert_id_alerts", type_="foreignkey")
        batch_op.drop_column("alert_id")
        batch_op.create_index("ix_alert_deliveries_group", ["group_key", "created_at"])

    notices = op.create_table(
        "alert_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("route", sa.Integer(), nullable=False),
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", monitor.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('firing', 'escalated', 'repeat', 'resolved')",
            name=op.f("ck_alert_notices_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_notices_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["alert_deliveries.id"],
            name=op.f("fk_alert_notices_delivery_id_alert_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_notices")),
    )
    with op.batch_alter_table("alert_notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_notices_alert_id"), ["alert_id"])
        batch_op.create_index(batch_op.f("ix_alert_notices_delivery_id"), ["delivery_id"])
        batch_op.create_index("ix_alert_notices_group", ["group_key", "delivery_id"])
    if legacy:
        op.bulk_insert(
            notices,
            [
                {
                    "alert_id": alert_id,
                    "channel": channel,
                    "route": 0,
                    "group_key": f"legacy:{alert_id}",
                    "kind": kind,
                    "reason": "sent before grouping (migrated)",
                    "created_at": created_at,
                    "delivery_id": delivery_id,
                }
                for delivery_id, alert_id, channel, kind, created_at in legacy
            ],
        )
    op.execute(f"CREATE VIEW v_alert_history AS {_alert_history(postgresql)}")


def downgrade() -> None:
    """Back to one delivery per alert: a grouped delivery stays with its first alert."""
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    op.execute("DROP VIEW IF EXISTS v_alert_history")
    first_alert = dict(
        bind.execute(
            sa.text(
                "SELECT delivery_id, MIN(alert_id) FROM alert_notices "
                "WHERE delivery_id IS NOT NULL GROUP BY delivery_id"
            )
        ).all()
    )
    with op.batch_alter_table("alert_notices", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_notices_group")
        batch_op.drop_index(batch_op.f("ix_alert_notices_delivery_id"))
        batch_op.drop_index(batch_op.f("ix_alert_notices_alert_id"))
    op.drop_table("alert_notices")
    with op.batch_alter_table("alert_deliveries") as batch_op:
        batch_op.add_column(sa.Column("alert_id", sa.Integer(), nullable=True))
    for delivery_id, alert_id in first_alert.items():
        bind.execute(
            sa.text("UPDATE alert_deliveries SET alert_id = :a WHERE id = :d"),
            {"a": alert_id, "d": delivery_id},
        )
    bind.execute(sa.text("DELETE FROM alert_deliveries WHERE alert_id IS NULL"))
    with op.batch_alter_table("alert_deliveries") as batch_op:
        batch_op.alter_column("alert_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            "fk_alert_deliveries_alert_id_alerts",
            "alerts",
            ["alert_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index("ix_alert_deliveries_alert_id", ["alert_id"])
        batch_op.drop_index("ix_alert_deliveries_group")
        batch_op.drop_column("group_key")
    op.drop_index("ix_alerts_fingerprint_episode", table_name="alerts")
    with op.batch_alter_table("alerts", recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column(
                "last_window_start",
                monitor.db.models.UTCDateTime(timezone=True),
                nullable=False,
                server_default=sa.text(_EPOCH),
            )
        )
    bind.execute(sa.text("UPDATE alerts SET last_window_start = episode_start"))
    for column in ("suppressed_reason", "calm", "notified_severity", "episode_start"):
        if postgresql:
            op.drop_column("alerts", column)
        else:
            op.execute(f"ALTER TABLE alerts DROP COLUMN {column}")
    if postgresql:
        op.alter_column("alerts", "last_window_start", server_default=None)
    op.execute(f"CREATE VIEW v_alert_history AS {_alert_history(postgresql, grouped=False)}")
