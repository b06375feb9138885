"""A negative burst on one ticker, produced to the real broker, arrives once at both channels."""

from __future__ import annotations

import email
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from alerts.channels.webhook import SIGNATURE_HEADER, verify_signature
from harness.worker import REPO, WorkerHarness, news, produce, stored_count, wait_for
from tests.alerts.conftest import WebhookReceiver, free_port, webhook  # noqa: F401 (fixture)

pytestmark = [pytest.mark.stack, pytest.mark.slow]
SECRET = "e2e-webhook-secret-value"


class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def write_config(path: Path, smtp_port: int, webhook_url: str) -> Path:
    path.write_text(
        f"""
[model]
path = "{REPO / "models" / "finmon-minilm-v1"}"

[[alerts.rules]]
name = "ticker-negative-spike"
dimension = "ticker"
window = "5m"
min_volume = 5
min_bearish = 3
min_share_increase = 0.3

[alerts.channels.desk]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from_addr = "finmon@127.0.0.1"
to_addrs = ["risk@127.0.0.1"]

[alerts.channels.hook]
type = "webhook"
url = "{webhook_url}"
secret_env = "E2E_WEBHOOK_SECRET"

[[alerts.routes]]
rules = ["*"]
channels = ["desk", "hook"]
"""
    )
    return path


def test_negative_burst_alerts_once_on_both_channels(
    tmp_path: Path,
    pg_engine: Engine,
    webhook: WebhookReceiver,  # noqa: F811
) -> None:
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        config = write_config(tmp_path / "config.toml", smtp.port, webhook.url)
        # every item in the previous, closed 5-minute window
        now = datetime.now(UTC)
        window = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 5 + 5)
        minutes_ago = (now - window).total_seconds() / 60 - 1
        burst = [
            news(
                f"burst-{i}",
                f"$BA plunges {5 + i}% after Boeing grounds fleet following crash",
                minutes_ago,
            )
            for i in range(10)
        ]
        calm = [
            news(f"calm-{i}", "$KO Coca-Cola names new chief financial officer", minutes_ago)
            for i in range(3)
        ]
        env = {"FINMON_CONFIG": str(config), "E2E_WEBHOOK_SECRET": SECRET}
        with WorkerHarness(tmp_path, "alerts", **env) as worker:
            produce(worker.input_topic, burst + calm)
            wait_for(lambda: stored_count(pg_engine) == 13, 90, "13 rows stored")
            wait_for(lambda: webhook.requests and mailbox.messages, 60, "an alert on both channels")
            time.sleep(6)  # a few more delivery rounds: nothing may arrive twice
        assert len(webhook.requests) == 1 and len(mailbox.messages) == 1
        request = webhook.requests[0]
        assert verify_signature(SECRET.encode(), request.body, request.headers[SIGNATURE_HEADER])
        document = request.json()
        assert document["kind"] == "firing"
        assert (document["alert"]["dimension"], document["alert"]["key"]) == ("ticker", "BA")
        assert any("Boeing" in h["headline"] for h in document["headlines"])
        mail = mailbox.messages[0]
        assert "BA" in mail["Subject"] and mail["To"] == "risk@127.0.0.1"
        assert SECRET not in worker.logs()
    finally:
        smtp.stop()
