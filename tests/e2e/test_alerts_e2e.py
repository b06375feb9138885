"""Negative bursts produced to the real broker: one arrives once at both channels; a shuffled
stream makes one incident per episode and a bounded number of grouped messages."""

from __future__ import annotations

import email
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from alerts.channels.webhook import SIGNATURE_HEADER, verify_signature
from alerts.models import AlertRow
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


TICKER_RULE = """[[alerts.rules]]
name = "ticker-negative-spike"
dimension = "ticker"
window = "5m"
min_volume = 5
min_bearish = 3
min_share_increase = 0.3
"""
"""The rule both tests judge: 3 bearish items in a ticker's 5-minute window, a 30-point rise."""


def write_config(path: Path, smtp_port: int, webhook_url: str) -> Path:
    path.write_text(
        f"""
[model]
path = "{REPO / "models" / "finmon-minilm-v1"}"

[alerts]
# the feed stops after one burst: a short idle timeout lets the watermark close its window
allowed_lateness = "0s"
idle_timeout = "2s"

{TICKER_RULE}
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
group_wait = "1s"
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
        # every item in a 5-minute window that ended at least 5 minutes ago
        now = datetime.now(UTC)
        window = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 5 + 10)
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
        [alert] = document["alerts"]
        assert (alert["dimension"], alert["key"]) == ("ticker", "BA")
        assert any("Boeing" in h["headline"] for h in alert["headlines"])
        mail = mailbox.messages[0]
        assert "BA" in mail["Subject"] and mail["To"] == "risk@127.0.0.1"
        assert SECRET not in worker.logs()
    finally:
        smtp.stop()


SHUFFLED_CONFIG = """
[model]
path = "{model}"

[alerts]
allowed_lateness = "2m"
idle_timeout = "3s"
reopen_within = "10m"
notify_max_age = "3h"

{TICKER_RULE}
[alerts.channels.hook]
type = "webhook"
url = "{url}"
secret_env = "E2E_WEBHOOK_SECRET"

[[alerts.routes]]
rules = ["*"]
channels = ["hook"]
group_wait = "1s"
group_interval = "2s"
"""
CALM_HEADLINES = (
    "${t} names new chief financial officer",
    "${t} to present at industry conference next month",
    "${t} schedules quarterly earnings call for next week",
)
BURST_HEADLINES = (
    "${t} plunges {pct}% after regulators ground its fleet following a crash",
    "${t} shares crash {pct}% as fraud probe widens",
    "${t} tumbles {pct}% after guidance slashed on collapsing demand",
)


def shuffled_stream(now: datetime) -> list[bytes]:
    """80 minutes of calm news on BA and KO (one item a minute each), with two bearish
    bursts on BA 20 minutes apart in event time (two episodes), all in random order."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 5 + 90)
    items = []
    for minute in range(80):
        for ticker in ("BA", "KO"):
            headline = CALM_HEADLINES[minute % 3].replace("{t}", ticker)
            items.append((f"calm-{ticker}-{minute}", headline, start + timedelta(minutes=minute)))
    for episode, offset in enumerate((35, 60)):  # whole 5-minute windows, 25 minutes apart
        for k in range(12):
            headline = BURST_HEADLINES[k % 3].replace("{t}", "BA").replace("{pct}", str(5 + k))
            at = start + timedelta(minutes=offset, seconds=20 * k)
            items.append((f"burst-{episode}-{k}", headline, at))
    random.Random(15).shuffle(items)
    return [
        json.dumps({"id": i, "published_at": at.isoformat(), "headline": h}).encode()
        for i, h, at in items
    ]


def test_a_shuffled_stream_makes_one_incident_per_episode(
    tmp_path: Path,
    pg_engine: Engine,
    webhook: WebhookReceiver,  # noqa: F811
) -> None:
    """Two episodes on BA, delivered in random order over 4 partitions: two incidents, each
    notified firing then resolved, in grouped messages: at most four webhook requests (one,
    when the backlog is judged and resolved within one group_wait)."""
    config = tmp_path / "config.toml"
    model = REPO / "models" / "finmon-minilm-v1"
    config.write_text(SHUFFLED_CONFIG.format(model=model, url=webhook.url, TICKER_RULE=TICKER_RULE))
    stream = shuffled_stream(datetime.now(UTC))
    env = {"FINMON_CONFIG": str(config), "E2E_WEBHOOK_SECRET": SECRET}
    with WorkerHarness(tmp_path, "shuffled", **env) as worker:
        produce(worker.input_topic, stream)
        wait_for(lambda: stored_count(pg_engine) == len(stream), 120, "every item stored")

        def resolved() -> list[Any]:
            alerts = [r.json()["alerts"] for r in webhook.requests]
            return [a for group in alerts for a in group if a["kind"] == "resolved"]

        wait_for(lambda: len(resolved()) >= 2, 120, "both incidents resolved and notified")
        time.sleep(6)  # a few more rounds: nothing more may arrive
    with pg_engine.connect() as conn:
        incidents = conn.execute(AlertRow.__table__.select()).all()
    assert [(i.rule, i.key, i.state) for i in incidents] == [
        ("ticker-negative-spike", "BA", "resolved")
    ] * 2, [(i.key, i.episode_start, i.anomalous_until) for i in incidents]
    starts = sorted(i.episode_start for i in incidents)
    assert starts[1] - starts[0] == timedelta(minutes=25)
    notices = [a for r in webhook.requests for a in r.json()["alerts"]]
    assert sorted(a["kind"] for a in notices) == ["firing", "firing", "resolved", "resolved"]
    assert 1 <= len(webhook.requests) <= 4
    assert webhook.requests[-1].json()["kind"] == "resolved"  # nothing is firing any more
    for request in webhook.requests:
        header = request.headers[SIGNATURE_HEADER]
        assert verify_signature(SECRET.encode(), request.body, header)
