"""The webhook channel against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import re
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from alerts.channels import DeliveryError
from alerts.channels.webhook import WebhookChannel, verify_signature
from alerts.rules import WebhookChannelSettings
from tests.alerts.conftest import WebhookReceiver, free_port, notification

SECRET = "s3cret-for-tests"


def channel(url: str, timeout: float = 2.0) -> WebhookChannel:
    settings = WebhookChannelSettings(type="webhook", url=url, timeout=timedelta(seconds=timeout))
    return WebhookChannel(settings, SecretStr(SECRET), ssl.create_default_context())


def test_posts_the_signed_document_with_an_idempotency_key(webhook: WebhookReceiver) -> None:
    note = notification()
    channel(webhook.url).send(note)
    [request] = webhook.requests
    assert verify_signature(SECRET.encode(), request.body, request.headers["X-Finmon-Signature"])
    assert not verify_signature(b"wrong", request.body, request.headers["X-Finmon-Signature"])
    assert request.headers["Idempotency-Key"] == "idem-1"
    assert request.headers["X-Finmon-Event"] == "firing"
    assert request.headers["Content-Type"] == "application/json"
    doc = request.json()
    assert doc == json.loads(json.dumps(note.payload))
    assert doc["schema"] == "finmon.alert-group/v2"
    [alert] = doc["alerts"]
    assert alert["key"] == "ACME" and alert["state"] == "firing"
    assert alert["window"] == {
        "start": "2026-01-05T09:00:00+00:00",
        "end": "2026-01-05T09:05:00+00:00",
        "seconds": 300,
    }
    assert alert["detected_at"] == "2026-01-05T09:07:00+00:00"
    assert alert["figures"]["n_bearish"] == 6 and alert["figures"]["negative_share"] == 0.75
    assert alert["headlines"][0]["headline"] == "ACME plunges after profit warning"
    assert SECRET not in request.body.decode()


@pytest.mark.parametrize(
    ("age_s", "secret", "tamper", "valid"),
    [
        (0, SECRET, False, True),
        (299, SECRET, False, True),
        (301, SECRET, False, False),  # a captured request replayed later
        (-301, SECRET, False, False),  # from the future
        (0, "wrong", False, False),
        (0, SECRET, True, False),  # the body changed
    ],
)
def test_the_signature_covers_body_and_time(
    webhook: WebhookReceiver, age_s: int, secret: str, tamper: bool, valid: bool
) -> None:
    settings = WebhookChannelSettings(type="webhook", url=webhook.url)
    hook = WebhookChannel(
        settings, SecretStr(SECRET), ssl.create_default_context(), clock=lambda: 1_800_000_000
    )
    hook.send(notification())
    [request] = webhook.requests
    header = request.headers["X-Finmon-Signature"]
    assert header.startswith("t=1800000000,v1=")
    body = request.body + b" " if tamper else request.body
    assert verify_signature(secret.encode(), body, header, now=1_800_000_000 + age_s) is valid


def test_a_malformed_signature_header_is_refused() -> None:
    for header in ("", "sha256=abc", "t=x,v1=abc", "v1=abc"):
        assert not verify_signature(SECRET.encode(), b"{}", header)


def test_every_attempt_sends_the_same_bytes(webhook: WebhookReceiver) -> None:
    hook = channel(webhook.url)
    hook.send(notification())
    hook.send(notification())
    first, second = webhook.requests
    assert first.body == second.body  # the signature's time is the attempt's own


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (502, True),
        (503, True),
        (408, True),
        (429, True),
        (400, False),
        (401, False),
        (404, False),
        (422, False),
        (302, False),
    ],
)
def test_http_errors(webhook: WebhookReceiver, status: int, retryable: bool) -> None:
    webhook.script = [status]
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as failure:
        channel(webhook.url).send(notification())
    assert failure.value.retryable is retryable
    assert len(webhook.requests) == 1  # a redirect is not followed


def test_a_timeout_is_retryable(webhook: WebhookReceiver) -> None:
    webhook.script = [0]  # hang
    with pytest.raises(DeliveryError) as failure:
        channel(webhook.url, timeout=0.3).send(notification())
    assert failure.value.retryable


def test_a_refused_connection_is_retryable() -> None:
    with pytest.raises(DeliveryError, match="unreachable") as failure:
        channel(f"http://127.0.0.1:{free_port()}/x").send(notification())
    assert failure.value.retryable


def test_the_receiver_snippet_in_the_docs_verifies_a_real_request(
    webhook: WebhookReceiver,
) -> None:
    """docs/alerts.md's verification snippet, run as written, against a signed request."""
    docs = (Path(__file__).parents[2] / "docs" / "alerts.md").read_text()
    [snippet] = re.findall(r"```python\n(.*?)```", docs, flags=re.S)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # our own documentation, run as written
    channel(webhook.url).send(notification())
    [request] = webhook.requests
    header = request.headers["X-Finmon-Signature"]
    assert namespace["verify"](SECRET.encode(), request.body, header)
    assert not namespace["verify"](SECRET.encode(), request.body + b" ", header)
    assert not namespace["verify"](b"wrong", request.body, header)
