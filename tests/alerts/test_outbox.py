"""The alerts tables: constraints that keep the outbox honest, and the migrations."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from alerts import outbox
from alerts.lifecycle import Incident, Kind
from monitor.db.engine import alembic_config, make_engine, upgrade
from tests.alerts.conftest import T0

INCIDENT = Incident(T0, T0 + timedelta(minutes=5), "warning", "warning", T0, T0)


def open_alert(engine: Engine, fingerprint: str = "fp") -> outbox.StoredAlert:
    with engine.begin() as conn:
        return outbox.open_alert(
            conn,
            fingerprint=fingerprint,
            rule="r",
            dimension="ticker",
            key="ACME",
            window_seconds=300,
            incident=INCIDENT,
            figures={},
            notified=True,
            now=T0,
        )


def test_one_open_incident_per_fingerprint(engine: Engine) -> None:
    first = open_alert(engine)
    with pytest.raises(IntegrityError):
        open_alert(engine)
    resolved = replace(INCIDENT, resolved_at=T0 + timedelta(hours=1))
    with engine.begin() as conn:
        outbox.save_alert(conn, first, resolved, {}, T0 + timedelta(hours=1), notified=True)
    second = open_alert(engine)  # a new episode once the first one resolved
    with engine.connect() as conn:
        assert outbox.open_incidents(conn) == [second]
        near = outbox.incidents_near(conn, ["fp"], T0)
    assert [a.id for a in near["fp"]] == [first.id, second.id]


def test_a_stale_update_is_refused(engine: Engine) -> None:
    alert = open_alert(engine)
    with engine.begin() as conn:
        outbox.save_alert(conn, alert, INCIDENT, {"n": 1}, T0, notified=False)
    with pytest.raises(outbox.ConcurrentUpdate), engine.begin() as conn:
        outbox.save_alert(conn, alert, INCIDENT, {"n": 2}, T0, notified=False)


def test_a_group_is_flushed_once(engine: Engine) -> None:
    """Two dispatchers flushing the same notices store one message: the key is unique."""
    alert = open_alert(engine)
    with engine.begin() as conn:
        outbox.add_notices(conn, alert, Kind.FIRING, "r", [(0, "g", "log")], T0)
        [notice] = outbox.waiting_notices(conn, "g", "log")
    key = outbox.delivery_key("g", "log", [notice.id])
    message = {"group": "g", "channel": "log", "kind": Kind.FIRING, "payload": {}}
    with engine.begin() as conn:
        outbox.add_delivery(conn, idempotency_key=key, notice_ids=[notice.id], now=T0, **message)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        outbox.add_delivery(conn, idempotency_key=key, notice_ids=[notice.id], now=T0, **message)
    with engine.connect() as conn:
        assert outbox.waiting_groups(conn) == []
        [(_, deliveries)] = outbox.list_alerts(conn, T0 - timedelta(days=1))
    assert [(d["kind"], d["channel"], d["status"]) for d in deliveries] == [
        ("firing", "log", "pending")
    ]


def test_migration_0002_downgrades_and_upgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.sqlite3"
    upgrade(url)
    command.downgrade(alembic_config(url), "0001")
    engine = make_engine(url)
    assert not {"alerts", "alert_deliveries"} & set(inspect(engine).get_table_names())
    upgrade(url)
    assert {"alerts", "alert_notices"} <= set(inspect(engine).get_table_names())
    engine.dispose()


LEGACY_ALERT = """
INSERT INTO alerts (id, fingerprint, rule, dimension, key, window_seconds, severity, state,
    started_at, resolved_at, last_notified_at, last_window_start, anomalous_until, figures,
    notifications, revision, updated_at)
VALUES (1, 'fp', 'r', 'ticker', 'BA', 300, 'warning', 'resolved', :t, :t, :t, :t, :t,
    :figures, 2, 1, :t)"""
LEGACY_DELIVERY = """
INSERT INTO alert_deliveries (alert_id, channel, kind, idempotency_key, payload, status,
    attempts, created_at) VALUES (1, 'log', :kind, :key, '{}', 'sent', 1, :t)"""


def test_migration_0005_carries_alerts_and_deliveries_forward(engine: Engine) -> None:
    """Rows written before 0005 keep their deliveries, gain their episode, and the view
    still summarises them; the way back works too."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    engine.dispose()
    command.downgrade(config, "0003")
    window = "2026-01-05T09:00:00+00:00"
    with engine.begin() as conn:
        conn.execute(
            text(LEGACY_ALERT),
            {"t": T0 + timedelta(minutes=9), "figures": f'{{"window_start": "{window}"}}'},
        )
        for kind in ("firing", "resolved"):
            conn.execute(text(LEGACY_DELIVERY), {"kind": kind, "key": kind, "t": T0})
    command.upgrade(config, "head")
    with engine.connect() as conn:
        [(alert, deliveries)] = outbox.list_alerts(conn, T0 - timedelta(days=1))
        history = conn.execute(text("SELECT * FROM v_alert_history")).one()
    assert alert["episode_start"] == T0 and alert["notified_severity"] == "warning"
    assert [(d["kind"], d["status"]) for d in deliveries] == [
        ("firing", "sent"),
        ("resolved", "sent"),
    ]
    assert history.deliveries == 2 and history.delivery_status == "sent"
    command.downgrade(config, "0003")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT deliveries FROM v_alert_history")).scalar() == 2
    command.upgrade(config, "head")
