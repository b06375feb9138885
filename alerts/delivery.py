"""Sending the outbox: one retry policy for every channel, and the dispatcher loop.

Each due delivery is claimed, sent, then recorded: `sent` only after the channel returned
(the receiver accepted), a retry at the policy's next time for a retryable failure, `failed`
for a final one or once the attempts are used up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from alerts import outbox
from alerts.channels import Channel, DeliveryError, Notification
from alerts.rules import DeliverySettings

log = logging.getLogger(__name__)
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: `initial_backoff * multiplier**(n-1)` after the n-th failed
    attempt, capped at `max_backoff`, for at most `max_attempts` attempts."""

    max_attempts: int
    initial_backoff: timedelta
    multiplier: float
    max_backoff: timedelta

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> RetryPolicy:
        return cls(
            settings.max_attempts,
            settings.initial_backoff,
            settings.multiplier,
            settings.max_backoff,
        )

    def backoff(self, attempts: int) -> timedelta:
        exponent = min(max(attempts - 1, 0), _MAX_EXPONENT)  # no float overflow
        seconds = self.initial_backoff.total_seconds() * self.multiplier**exponent
        return timedelta(seconds=min(seconds, self.max_backoff.total_seconds()))

    def next_attempt(self, error: DeliveryError, attempts: int, now: datetime) -> datetime | None:
        """When to try again after `attempts` attempts ended in `error`; None: give up."""
        if not error.retryable or attempts >= self.max_attempts:
            return None
        return now + self.backoff(attempts)


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    """Attempts that failed and were scheduled again."""
    failed: int = 0
    """Deliveries given up for good: a final refusal or no attempts left."""

    def __bool__(self) -> bool:
        """True when the round did anything, so schedulers can log only busy rounds."""
        return bool(self.sent or self.retried or self.failed)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        channels: Mapping[str, Channel],
        policy: RetryPolicy,
        *,
        batch_size: int,
        claim_timeout: timedelta,
    ) -> None:
        self.engine = engine
        self.channels = channels
        self.policy = policy
        self.batch_size = batch_size
        self.claim_timeout = claim_timeout

    def deliver_pending(self, now: datetime) -> DeliveryStats:
        """Send up to `batch_size` due deliveries, one short transaction per step."""
        stats = DeliveryStats()
        with self.engine.begin() as conn:
            due = outbox.due_deliveries(conn, now, self.batch_size)
        for delivery in due:
            self._deliver(delivery, now, stats)
        return stats

    def _deliver(
        self, delivery: outbox.PendingDelivery, now: datetime, stats: DeliveryStats
    ) -> None:
        if delivery.attempts >= self.policy.max_attempts:
            # The last claim expired: its dispatcher died mid-send.
            self._record_failure(delivery, "gave up: the last attempt was interrupted", stats)
            return
        with self.engine.begin() as conn:
            if not outbox.claim(conn, delivery, now, self.claim_timeout):
                return
        attempts = delivery.attempts + 1
        error = self._send(delivery)
        if error is None:
            with self.engine.begin() as conn:
                outbox.mark_sent(conn, delivery.id, now)
            stats.sent += 1
            return
        message = f"attempt {attempts}: {error}"
        retry_at = self.policy.next_attempt(error, attempts, now)
        if retry_at is None:
            self._record_failure(delivery, message, stats)
            return
        log.info(
            "alert delivery failed, will retry",
            extra={"delivery_id": delivery.id, "channel": delivery.channel, "error": message},
        )
        with self.engine.begin() as conn:
            outbox.mark_retry(conn, delivery.id, retry_at, message)
        stats.retried += 1

    def _record_failure(
        self, delivery: outbox.PendingDelivery, message: str, stats: DeliveryStats
    ) -> None:
        log.warning(
            "alert delivery failed for good",
            extra={"delivery_id": delivery.id, "channel": delivery.channel, "error": message},
        )
        with self.engine.begin() as conn:
            outbox.mark_failed(conn, delivery.id, message)
        stats.failed += 1

    def _send(self, delivery: outbox.PendingDelivery) -> DeliveryError | None:
        channel = self.channels.get(delivery.channel)
        if channel is None:
            return DeliveryError(f"channel {delivery.channel!r} is not configured", retryable=False)
        try:
            channel.send(Notification(delivery.idempotency_key, delivery.kind, delivery.payload))
        except DeliveryError as exc:
            return exc
        except Exception as exc:  # a channel bug must not lose the notification
            log.exception("alert channel crashed", extra={"channel": delivery.channel})
            return DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
        return None
