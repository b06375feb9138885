"""Webhooks: an HTTP POST of the JSON document, signed, with an idempotency key.

Headers a receiver can rely on:

- `X-Finmon-Signature: t=<unix seconds>,v1=<hex>`: HMAC-SHA256, with the shared secret, of
  `<t>.` followed by the exact body (the Stripe/Slack scheme). `t` is the time of the
  attempt, so a captured request cannot be replayed later: a receiver checks the MAC in
  constant time and refuses a `t` older than a few minutes (`verify_signature`; the
  receiver's snippet is in docs/alerts.md).
- `Idempotency-Key`: the same on every attempt of one delivery; drop a key seen before.
- `X-Finmon-Event`: `firing` (some alert of the group is firing) or `resolved`.

2xx is acceptance. 5xx, 408, 429, timeouts and connection errors are retried; any other
4xx (and 3xx: redirects are not followed, a POST must not turn into a GET) is final.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
import urllib.request
from collections.abc import Callable
from email.message import Message
from urllib.error import HTTPError, URLError

from pydantic import SecretStr

from alerts.channels.base import DeliveryError, Notification
from alerts.rules import WebhookChannelSettings

SIGNATURE_HEADER = "X-Finmon-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_RETRYABLE_4XX = frozenset({408, 429})
_MAX_ERROR_BODY = 200
_MAX_RESPONSE_BODY = 64 * 1024


DEFAULT_TOLERANCE_S = 300


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header for `body` sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: bytes,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """What a receiver does: the MAC matches (constant-time) and the timestamp is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> None:
        return None


class WebhookChannel:
    def __init__(
        self,
        settings: WebhookChannelSettings,
        secret: SecretStr,
        context: ssl.SSLContext,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._secret = secret
        self._clock = clock
        self._opener = urllib.request.build_opener(
            _NoRedirect(), urllib.request.HTTPSHandler(context=context)
        )

    def send(self, notification: Notification) -> None:
        body = notification.body()
        request = urllib.request.Request(
            self.settings.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "finmon-alerts/2",
                SIGNATURE_HEADER: sign(
                    self._secret.get_secret_value().encode(), body, int(self._clock())
                ),
                IDEMPOTENCY_HEADER: notification.idempotency_key,
                "X-Finmon-Event": notification.kind,
            },
        )
        try:
            with self._opener.open(request, timeout=self.settings.timeout.total_seconds()) as r:
                r.read(_MAX_RESPONSE_BODY)
        except HTTPError as exc:
            detail = exc.read(_MAX_ERROR_BODY).decode(errors="replace").strip()
            retryable = exc.code >= 500 or exc.code in _RETRYABLE_4XX
            raise DeliveryError(f"HTTP {exc.code}: {detail}", retryable=retryable) from exc
        except URLError as exc:
            retryable = not isinstance(exc.reason, ssl.SSLCertVerificationError)
            raise DeliveryError(f"webhook unreachable: {exc.reason}", retryable=retryable) from exc
        except (TimeoutError, OSError) as exc:
            raise DeliveryError(f"webhook connection: {exc!r}", retryable=True) from exc
