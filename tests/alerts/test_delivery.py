"""The retry policy and the dispatcher over the SQL outbox, with a scripted channel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from alerts import outbox
from alerts.channels import DeliveryError, Notification
from alerts.delivery import DeliveryStats, Dispatcher, RetryPolicy
from alerts.lifecycle import Incident, Kind
from alerts.models import AlertDeliveryRow
from tests.alerts.conftest import T0

POLICY = RetryPolicy(
    max_attempts=4,
    initial_backoff=timedelta(seconds=5),
    multiplier=2.0,
    max_backoff=timedelta(seconds=30),
)
LEASE = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("attempts", "delay_s"), [(1, 5), (2, 10), (3, 20), (4, 30), (10, 30), (10_000, 30)]
)
def test_backoff_grows_exponentially_up_to_the_cap(attempts: int, delay_s: int) -> None:
    assert POLICY.backoff(attempts) == timedelta(seconds=delay_s)


@pytest.mark.parametrize(
    ("retryable", "attempts", "retry_in_s"),
    [(True, 1, 5), (True, 3, 20), (True, 4, None), (False, 1, None)],
)
def test_next_attempt(retryable: bool, attempts: int, retry_in_s: int | None) -> None:
    at = POLICY.next_attempt(DeliveryError("x", retryable=retryable), attempts, T0)
    assert at == (None if retry_in_s is None else T0 + timedelta(seconds=retry_in_s))


class ScriptedChannel:
    """Fails with the scripted errors in order, then accepts; records what it accepted."""

    def __init__(self, *errors: DeliveryError | Exception) -> None:
        self.errors = list(errors)
        self.calls: list[Notification] = []
        self.accepted: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.calls.append(notification)
        if self.errors:
            raise self.errors.pop(0)
        self.accepted.append(notification)


def queue(engine: Engine, channels: list[str]) -> None:
    """One firing incident with a pending message per channel, as a group flush stores them."""
    incident = Incident(T0, T0 + timedelta(minutes=5), "warning", "warning", T0, T0)
    with engine.begin() as conn:
        alert = outbox.open_alert(
            conn,
            fingerprint="fp",
            rule="r",
            dimension="ticker",
            key="ACME",
            window_seconds=300,
            incident=incident,
            figures={"score": 4.0},
            notified=True,
            now=T0,
        )
        outbox.add_notices(conn, alert, Kind.FIRING, "r", [(0, "g", c) for c in channels], T0)
        for channel in channels:
            [notice] = outbox.waiting_notices(conn, "g", channel)
            key = outbox.delivery_key("g", channel, [notice.id])
            outbox.add_delivery(
                conn,
                group="g",
                channel=channel,
                kind=Kind.FIRING,
                idempotency_key=key,
                payload={"channel": channel, "idempotency_key": key},
                notice_ids=[notice.id],
                now=T0,
            )


def deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(AlertDeliveryRow.__table__).order_by("id")))


def dispatcher(engine: Engine, **channels: Any) -> Dispatcher:
    return Dispatcher(engine, channels, POLICY, batch_size=10, claim_timeout=LEASE)


def test_retryable_failures_back_off_then_send_once(sqlite_engine: Engine) -> None:
    queue(sqlite_engine, ["hook"])
    hook = ScriptedChannel(*(DeliveryError("HTTP 500", retryable=True),) * 2)
    d = dispatcher(sqlite_engine, hook=hook)
    assert d.deliver_pending(T0) == DeliveryStats(retried=1)
    assert d.deliver_pending(T0 + timedelta(seconds=4)) == DeliveryStats()  # not due yet
    assert d.deliver_pending(T0 + timedelta(seconds=5)) == DeliveryStats(retried=1)
    assert d.deliver_pending(T0 + timedelta(seconds=15)) == DeliveryStats(sent=1)
    assert d.deliver_pending(T0 + timedelta(days=1)) == DeliveryStats()
    [row] = deliveries(sqlite_engine)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == (
        "sent",
        3,
        T0 + timedelta(seconds=15),
        None,
    )
    assert len({n.idempotency_key for n in hook.calls}) == 1 and len(hook.accepted) == 1


def test_a_final_refusal_is_recorded_and_not_retried(sqlite_engine: Engine) -> None:
    queue(sqlite_engine, ["hook"])
    hook = ScriptedChannel(DeliveryError("HTTP 400: bad", retryable=False))
    d = dispatcher(sqlite_engine, hook=hook)
    assert d.deliver_pending(T0) == DeliveryStats(failed=1)
    assert d.deliver_pending(T0 + timedelta(days=1)) == DeliveryStats()
    [row] = deliveries(sqlite_engine)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "attempt 1: HTTP 400: bad")
    assert len(hook.calls) == 1


def test_attempts_are_limited(sqlite_engine: Engine) -> None:
    queue(sqlite_engine, ["hook"])
    hook = ScriptedChannel(*(DeliveryError("timeout", retryable=True),) * 10)
    d = dispatcher(sqlite_engine, hook=hook)
    stats = [d.deliver_pending(T0 + timedelta(minutes=i)) for i in range(6)]
    assert [s.retried for s in stats] == [1, 1, 1, 0, 0, 0]
    assert [s.failed for s in stats] == [0, 0, 0, 1, 0, 0]
    assert len(hook.calls) == POLICY.max_attempts


def test_channels_fail_independently(sqlite_engine: Engine) -> None:
    queue(sqlite_engine, ["log", "hook"])
    log, hook = ScriptedChannel(), ScriptedChannel(DeliveryError("down", retryable=True))
    stats = dispatcher(sqlite_engine, log=log, hook=hook).deliver_pending(T0)
    assert stats == DeliveryStats(sent=1, retried=1)
    assert [r.status for r in deliveries(sqlite_engine)] == ["sent", "pending"]


def test_a_crashing_channel_is_retried_not_lost(sqlite_engine: Engine) -> None:
    queue(sqlite_engine, ["hook"])
    hook = ScriptedChannel(RuntimeError("bug"))
    d = dispatcher(sqlite_engine, hook=hook)
    assert d.deliver_pending(T0) == DeliveryStats(retried=1)
    assert d.deliver_pending(T0 + timedelta(minutes=1)) == DeliveryStats(sent=1)


def test_an_unconfigured_channel_fails_clearly(sqlite_engine: Engine) -> None:
    queue(sqlite_engine, ["gone"])
    assert dispatcher(sqlite_engine).deliver_pending(T0) == DeliveryStats(failed=1)
    assert "not configured" in deliveries(sqlite_engine)[0].last_error


def test_a_dispatcher_dying_mid_send_is_retried_after_its_claim_expires(
    sqlite_engine: Engine,
) -> None:
    queue(sqlite_engine, ["hook"])
    with sqlite_engine.begin() as conn:  # another dispatcher claims it, then dies
        [pending] = outbox.due_deliveries(conn, T0, 10)
        assert outbox.claim(conn, pending, T0, LEASE)
    hook = ScriptedChannel()
    d = dispatcher(sqlite_engine, hook=hook)
    assert d.deliver_pending(T0 + LEASE - timedelta(seconds=1)) == DeliveryStats()
    assert d.deliver_pending(T0 + LEASE) == DeliveryStats(sent=1)
    assert hook.accepted[0].idempotency_key == pending.idempotency_key
    assert deliveries(sqlite_engine)[0].attempts == 2


def test_two_dispatchers_never_send_the_same_delivery(sqlite_engine: Engine) -> None:
    queue(sqlite_engine, ["hook"])
    with sqlite_engine.begin() as conn:
        [seen_by_both] = outbox.due_deliveries(conn, T0, 10)
    first = ScriptedChannel()
    assert dispatcher(sqlite_engine, hook=first).deliver_pending(T0).sent == 1
    with sqlite_engine.begin() as conn:  # the slower one claims what it saw earlier
        assert not outbox.claim(conn, seen_by_both, T0, LEASE)


def test_stats_are_false_when_nothing_happened() -> None:
    assert not DeliveryStats()
    assert DeliveryStats(retried=1)
