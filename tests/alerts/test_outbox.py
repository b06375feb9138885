"""The alerts tables: constraints that keep the outbox honest, and the 0002 migration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import IntegrityError

from alerts import outbox
from alerts.lifecycle import AlertState, Kind
from monitor.db.engine import alembic_config, make_engine, upgrade
from tests.alerts.conftest import T0

STATE = AlertState("warning", T0, T0, T0, T0 + timedelta(minutes=5))


def open_alert(engine: Engine, fingerprint: str = "fp") -> outbox.StoredAlert:
    with engine.begin() as conn:
        return outbox.open_alert(
            conn,
            fingerprint=fingerprint,
            rule="r",
            dimension="ticker",
            key="ACME",
            window_seconds=300,
            state=STATE,
            figures={},
            now=T0,
        )


def test_one_firing_alert_per_fingerprint(engine: Engine) -> None:
    first = open_alert(engine)
    with pytest.raises(IntegrityError):
        open_alert(engine)
    with engine.begin() as conn:
        outbox.save_alert(conn, first, None, {}, T0 + timedelta(hours=1), notified=True)
    second = open_alert(engine)  # a new incident once the first one resolved
    with engine.connect() as conn:
        assert outbox.firing_alerts(conn, ["fp"]) == {"fp": second}


def test_a_stale_update_is_refused(engine: Engine) -> None:
    alert = open_alert(engine)
    with engine.begin() as conn:
        outbox.save_alert(conn, alert, STATE, {"n": 1}, T0, notified=False)
    with pytest.raises(outbox.ConcurrentUpdate), engine.begin() as conn:
        outbox.save_alert(conn, alert, STATE, {"n": 2}, T0, notified=False)


def test_idempotency_keys_are_unique(engine: Engine) -> None:
    alert = open_alert(engine)

    def payload(channel: str, key: str) -> dict[str, str]:
        return {"key": key}

    with engine.begin() as conn:
        outbox.enqueue(conn, alert, Kind.FIRING, ["log", "hook"], payload, T0)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        outbox.enqueue(conn, alert, Kind.FIRING, ["hook"], payload, T0)


def test_a_refired_incident_at_the_same_instant_gets_new_keys(engine: Engine) -> None:
    """Fire, resolve and fire again within one evaluation (same `now`): both incidents'
    notifications must be stored, under different keys."""
    first = open_alert(engine)
    with engine.begin() as conn:
        outbox.enqueue(conn, first, Kind.FIRING, ["log"], lambda c, k: {"key": k}, T0)
        outbox.save_alert(conn, first, None, {}, T0, notified=True)
    second = open_alert(engine)
    assert second.state.started_at == first.state.started_at
    with engine.begin() as conn:
        outbox.enqueue(conn, second, Kind.FIRING, ["log"], lambda c, k: {"key": k}, T0)
    assert outbox.idempotency_key(first, 1, "log") != outbox.idempotency_key(second, 1, "log")


def test_migration_0002_downgrades_and_upgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.sqlite3"
    upgrade(url)
    command.downgrade(alembic_config(url), "0001")
    engine = make_engine(url)
    assert not {"alerts", "alert_deliveries"} & set(inspect(engine).get_table_names())
    upgrade(url)
    assert {"alerts", "alert_deliveries"} <= set(inspect(engine).get_table_names())
    engine.dispose()
