"""What every channel is: `send` one notification, or raise `DeliveryError` saying whether
trying again could help. The retry policy itself lives in `alerts.delivery`, shared by all."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Notification:
    idempotency_key: str
    kind: str
    payload: dict[str, Any]

    def body(self) -> bytes:
        """The payload as canonical JSON bytes: the same on every attempt."""
        return json.dumps(
            self.payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode()


class DeliveryError(Exception):
    """A failed attempt; `retryable` is False when the receiver refused for good (HTTP 4xx,
    SMTP 5xx, a misconfiguration), so retrying would only repeat the refusal."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    def send(self, notification: Notification) -> None:
        """Deliver, returning only once the receiver accepted; raise `DeliveryError`."""
        ...


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context, trusting `ca_file` instead of the system CAs if given."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
