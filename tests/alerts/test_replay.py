"""`finmon replay` of past hours: incidents are stored as history, and nobody is emailed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import select

from alerts.models import AlertRow
from monitor.db.engine import make_engine
from tests.alerts.conftest import free_port
from tests.alerts.test_email import Mailbox
from tests.ops.seeding import replay_sample, write_config


def test_a_replay_of_old_data_stores_incidents_and_emails_no_one(tmp_path: Path) -> None:
    mailbox = Mailbox(port=free_port())
    smtp = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    smtp.start()
    try:
        config = write_config(tmp_path, f"sqlite:///{tmp_path / 'replay.sqlite3'}")
        channel = {
            "type": "email",
            "host": "127.0.0.1",
            "port": mailbox.port,
            "security": "none",
            "from_addr": "finmon@example.test",
            "to_addrs": ["desk@example.test"],
        }
        config.write_text(
            config.read_text()
            + f"[alerts.channels.desk]\n{_toml(channel)}\n"
            + '[[alerts.routes]]\nrules = ["*"]\nchannels = ["desk"]\n'
        )
        # six hours ending now: the sample's episode on BA is about 1.8 h old
        settings, summary = replay_sample(config, datetime.now(UTC))
    finally:
        smtp.stop()
    assert summary.incidents >= 1 and summary.history == summary.incidents
    assert summary.alerts == 0 and mailbox.messages == []
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        reasons = conn.scalars(select(AlertRow.__table__.c.suppressed_reason)).all()
    engine.dispose()
    assert reasons and all(r.startswith("history: the window ended") for r in reasons)
    assert "stored as history, not delivered" in str(summary)


def _toml(table: dict[str, object]) -> str:
    return "\n".join(f"{key} = {json.dumps(value)}" for key, value in table.items())
