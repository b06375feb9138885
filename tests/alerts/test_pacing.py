"""Which windows are judged when: closed by the watermark, settled, paced. Fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.pacing import EvaluationPacer
from monitor.windows import WindowKey

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def w(i: int) -> WindowKey:
    return WindowKey(300, T0 + timedelta(minutes=5 * i), "ticker", "ACME")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (action, windows, clock, watermark in minutes): hand-outs per step
        ([("add", [0], 0, None), ("due", [], 0, at(4))], [[], []]),  # open: not yet
        ([("add", [0], 0, None), ("due", [], 0, at(5))], [[], []]),  # touched since: unsettled
        ([("add", [0], 0, None), ("due", [], 0, at(5)), ("due", [], 1, at(5))], [[], [], [0]]),
        (  # kept busy by a backlog: judged once it stops changing
            [
                ("add", [0], 0, None),
                ("due", [], 0, at(60)),
                ("add", [0], 0.5, None),
                ("due", [], 1, at(60)),
                ("due", [], 2, at(60)),
            ],
            [[], [], [], [], [0]],
        ),
        (  # paced: not twice within the interval
            [("add", [0], 0, None), ("due", [], 0, at(9)), ("due", [], 0.5, at(9))],
            [[], [], []],
        ),
        ([("add", [0, 1], 0, None), ("all", [], 0, at(5))], [[], [0]]),  # all: closed ones
        (
            [
                ("add", [0], 0, None),
                ("due", [], 0, at(9)),
                ("due", [], 1, at(9)),
                ("back", [0], 1, None),
                ("due", [], 2, at(9)),
            ],
            [[], [], [0], [], [0]],
        ),
    ],
)
def test_hand_outs(steps: list, expected: list) -> None:
    pacer = EvaluationPacer(1.0)
    out = []
    for action, windows, clock, watermark in steps:
        keys = [w(i) for i in windows]
        if action == "add":
            pacer.add(keys)
            out.append([])
        elif action == "back":
            pacer.give_back(keys)
            out.append([])
        elif action == "due":
            out.append(sorted(k.window_start for k in pacer.take_due(clock, watermark)))
        else:
            out.append(sorted(k.window_start for k in pacer.take_all(clock, watermark)))
    assert out == [[w(i).window_start for i in step] for step in expected]


def test_pending_counts_each_window_once() -> None:
    pacer = EvaluationPacer(1.0)
    pacer.add([w(0), w(1)])
    pacer.add([w(1)])
    assert pacer.pending == 2
    assert pacer.take_all(0, at(10)) and pacer.pending == 0


def test_late_windows_defer_judging_until_the_backlog_drains() -> None:
    """A round that brought late windows (behind the watermark) hands nothing out: the
    stream is out of order beyond the allowed lateness, so counts are still partial."""
    pacer = EvaluationPacer(1.0, max_defer_s=10.0)
    pacer.add([w(0)], at(60))  # late: its window closed long ago
    assert pacer.take_due(0, at(60)) == []
    pacer.add([w(1)], at(60))
    assert pacer.take_due(1, at(60)) == []
    assert sorted(pacer.take_due(2, at(60))) == [w(0), w(1)]  # a round without late data


def test_deferring_is_bounded() -> None:
    pacer = EvaluationPacer(1.0, max_defer_s=5.0)
    handed: list[WindowKey] = []
    for second in range(12):  # a late window in every round, forever
        pacer.add([w(second % 2)], at(60))
        handed += pacer.take_due(second, at(60))
    assert handed, "judging resumes after max_defer_s even if late items keep coming"
