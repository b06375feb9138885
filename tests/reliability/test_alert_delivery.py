"""Alert deliveries through receiver outages, end to end: a worker fed a negative spike
fires alerts; the webhook receiver answers its first POSTs with 503 and the SMTP server is
not listening at first; both come back, and every delivery then arrives exactly once.

The receivers are the alert tests' own (`tests/alerts`): the scripted HTTP receiver and the
aiosmtpd mailbox.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, func, select

from alerts.channels.webhook import verify_signature
from alerts.models import AlertDeliveryRow
from harness.worker import WorkerHarness, wait_for
from tests.alerts.conftest import WebhookReceiver, free_port
from tests.alerts.test_email import Mailbox
from tests.reliability.accounting import Feed, PacedProducer, account, wait_until_accounted
from tests.reliability.conftest import RELIABILITY_PG_URL

pytestmark = [pytest.mark.stack, pytest.mark.slow]

ACME_BEARISH = (
    "$ACME shares plunge 40% after accounting fraud probe",
    "$ACME crashes as CEO resigns amid fraud scandal",
    "$ACME tumbles after profit warning, guidance slashed",
    "$ACME plummets after regulators halt sales of its flagship product",
    "$ACME files for bankruptcy protection as debt talks collapse",
)
WEBHOOK_SECRET = f"whsec-{secrets.token_hex(12)}"
REFUSED_POSTS = 4


def alert_settings(webhook_url: str, smtp_port: int) -> dict[str, Any]:
    """Both channels for every rule, and a retry policy quick enough for a test. The feed
    stops after a few seconds: a short idle timeout lets the watermark close its windows."""
    return {
        "allowed_lateness": "0s",
        "idle_timeout": "2s",
        "channels": {
            "hook": {"type": "webhook", "url": webhook_url, "timeout": "5s"},
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "from_addr": "finmon@example.test",
                "to_addrs": ["risk-desk@example.test"],
                "timeout": "5s",
            },
        },
        "routes": [{"rules": ["*"], "channels": ["hook", "mail"]}],
        "delivery": {
            "initial_backoff": "1s",
            "multiplier": 2.0,
            "max_backoff": "4s",
            "max_attempts": 50,
        },
    }


def deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(AlertDeliveryRow)))


def failed_attempts(engine: Engine, channel: str) -> int:
    """The most attempts any pending delivery of `channel` has used so far."""
    with engine.connect() as conn:
        return (
            conn.scalar(
                select(func.max(AlertDeliveryRow.attempts)).where(
                    AlertDeliveryRow.channel == channel, AlertDeliveryRow.status == "pending"
                )
            )
            or 0
        )


def test_deliveries_retry_through_receiver_outages_and_arrive_once(
    tmp_path: Path, reliability_engine: Engine, webhook: WebhookReceiver
) -> None:
    engine = reliability_engine
    webhook.script = [503] * REFUSED_POSTS  # the receiver's backend is down behind its proxy
    mailbox = Mailbox(port=free_port())  # nothing listens there until the controller starts
    smtp = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    # published 6 minutes ago: their 5-minute window has ended, so it closes once idle
    feed = Feed("alert", 200, headlines=ACME_BEARISH, spread_minutes=1, newest_minutes_ago=6)
    worker = WorkerHarness(
        tmp_path,
        "alerts",
        FINMON_DATABASE__URL=RELIABILITY_PG_URL,
        FINMON_ALERTS=json.dumps(alert_settings(webhook.url, mailbox.port)),
        FINMON_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    with worker:
        producer = PacedProducer(worker.input_topic, feed.messages(), per_second=40).start()
        wait_for(
            lambda: not webhook.script and failed_attempts(engine, "mail") >= 2,
            180,
            "deliveries failing on both channels while their receivers are down",
        )
        smtp.start()
        try:
            assert producer.join() == feed.n
            wait_until_accounted(feed, engine, worker)
            wait_for(lambda: all(d.status == "sent" for d in deliveries(engine)), 120, "all sent")
        finally:
            smtp.stop()
        logs = worker.logs()
    result = account(
        "webhook 503 x4 and SMTP down, then up", feed, engine, worker.output_topic, worker.dlq_topic
    )
    print(f"\n{result.row()}")
    result.assert_exact()

    sent = deliveries(engine)
    hook_keys = {d.idempotency_key for d in sent if d.channel == "hook"}
    mail_keys = {d.idempotency_key for d in sent if d.channel == "mail"}
    assert hook_keys and mail_keys
    # Every webhook delivery was accepted exactly once, after the refused POSTs.
    accepted = webhook.requests[REFUSED_POSTS:]
    assert Counter(r.headers["Idempotency-Key"] for r in accepted) == Counter(hook_keys)
    assert {r.headers["Idempotency-Key"] for r in webhook.requests} == hook_keys
    for request in webhook.requests:
        signature = request.headers["X-Finmon-Signature"]
        assert verify_signature(WEBHOOK_SECRET.encode(), request.body, signature)
    # Every email delivery arrived exactly once, after failed connection attempts.
    received = Counter(m["X-Finmon-Idempotency-Key"] for m in mailbox.messages)
    assert received == Counter(mail_keys)
    # >= 2, not 3: the SMTP server may come up while a claimed second attempt is connecting
    assert max(d.attempts for d in sent if d.channel == "mail") >= 2
    print(
        f"deliveries: webhook {len(hook_keys)} sent once each after {REFUSED_POSTS} refused "
        f"POSTs; email {len(mail_keys)} sent once each, "
        f"{sum(d.attempts for d in sent if d.channel == 'mail')} attempts in all"
    )
    assert WEBHOOK_SECRET not in logs
