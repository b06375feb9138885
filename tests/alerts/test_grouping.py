"""Grouping notices into messages, as Alertmanager does: pure tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.grouping import flush_due_at, group_key, group_labels, message_kind
from alerts.lifecycle import Kind

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WAIT, INTERVAL = timedelta(seconds=30), timedelta(minutes=5)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("oldest", "last_flush", "due"),
    [
        (s(0), None, s(30)),  # a new group waits group_wait for more alerts
        (s(100), s(0), s(300)),  # after a flush: no sooner than group_interval
        (s(400), s(0), s(430)),  # a quiet group that wakes up waits group_wait again
    ],
)
def test_flush_due_at(oldest: datetime, last_flush: datetime | None, due: datetime) -> None:
    assert flush_due_at(oldest, last_flush, WAIT, INTERVAL) == due


ALERT = {"rule": "ticker-spike", "dimension": "ticker", "key": "ACME"}


@pytest.mark.parametrize(
    ("group_by", "other", "same_group"),
    [
        ([], {"rule": "market-spike", "dimension": "all", "key": "*"}, True),
        (["rule"], {**ALERT, "key": "BETA"}, True),
        (["key"], {**ALERT, "key": "BETA"}, False),
        (["dimension", "key"], dict(ALERT), True),
    ],
)
def test_group_by_decides_who_travels_together(
    group_by: list[str], other: dict[str, str], same_group: bool
) -> None:
    first = group_key(0, "hook", group_labels(group_by, ALERT))
    second = group_key(0, "hook", group_labels(group_by, other))
    assert (first == second) is same_group


def test_groups_are_per_route_and_channel() -> None:
    keys = {group_key(r, c, {}) for r in (0, 1) for c in ("hook", "mail")}
    assert len(keys) == 4


@pytest.mark.parametrize(
    ("open_states", "kind"),
    [([True], Kind.FIRING), ([False, True], Kind.FIRING), ([False, False], Kind.RESOLVED)],
)
def test_a_message_is_firing_while_any_alert_in_it_is(open_states: list[bool], kind: Kind) -> None:
    assert message_kind(open_states) is kind
