"""Stall detection (monitor/progress.py): scenarios on a fake clock, and properties."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.progress import Offsets, ProgressTracker

STALL_AFTER = 30.0


@dataclass(frozen=True)
class Assign:
    at: float
    partitions: tuple[int, ...]


@dataclass(frozen=True)
class Observe:
    at: float
    offsets: dict[int, tuple[int | None, int | None]]  # partition: (committed, end)


@dataclass(frozen=True)
class Expect:
    at: float
    stalled: set[int]


SCENARIOS = {
    "progressing partition is never stalled": [
        Assign(0, (0,)),
        Observe(0, {0: (0, 100)}),
        Observe(20, {0: (40, 120)}),
        Observe(45, {0: (80, 150)}),
        Expect(70, set()),
    ],
    "lag without progress for stall_after is a stall": [
        Assign(0, (0, 1)),
        Observe(1, {0: (10, 50), 1: (5, 5)}),
        Expect(29, set()),
        Expect(30, {0}),
    ],
    "an idle (caught-up) partition is never stalled": [
        Assign(0, (0,)),
        Observe(1, {0: (7, 7)}),
        Observe(500, {0: (7, 7)}),
        Expect(1000, set()),
    ],
    "lag after a long idle spell gets the full grace": [
        Assign(0, (0,)),
        Observe(400, {0: (7, 7)}),
        Observe(401, {0: (7, 9)}),
        Expect(420, set()),
        Expect(431, {0}),
    ],
    "progress clears a stall": [
        Assign(0, (0,)),
        Observe(0, {0: (0, 10)}),
        Expect(40, {0}),
        Observe(41, {0: (5, 10)}),
        Expect(42, set()),
    ],
    "a partition gained in a rebalance starts its grace at the rebalance": [
        Assign(0, (0,)),
        Observe(0, {0: (0, 0)}),
        Assign(100, (0, 1)),
        Observe(100, {0: (0, 0), 1: (3, 50)}),
        Expect(129, set()),
        Expect(130, {1}),
    ],
    "a stalled partition lost in a rebalance is forgotten": [
        Assign(0, (0, 1)),
        Observe(0, {0: (0, 10), 1: (0, 0)}),
        Expect(40, {0}),
        Assign(41, (1,)),
        Observe(41, {0: (0, 10), 1: (0, 0)}),  # a stale offset of a lost partition
        Expect(100, set()),
    ],
    "a partition kept through a rebalance keeps its history": [
        Assign(0, (0,)),
        Observe(0, {0: (0, 10)}),
        Assign(20, (0, 1)),
        Expect(30, {0}),
    ],
    "unknown offsets are not lag": [
        Assign(0, (0, 1)),
        Observe(0, {0: (None, 10), 1: (4, None)}),
        Expect(100, set()),
    ],
    "end moving without commits is not progress": [
        Assign(0, (0,)),
        Observe(0, {0: (0, 10)}),
        Observe(20, {0: (0, 30)}),
        Expect(30, {0}),
    ],
}


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_scenarios(steps: list[Assign | Observe | Expect]) -> None:
    tracker: ProgressTracker[int] = ProgressTracker(STALL_AFTER)
    for step in steps:
        if isinstance(step, Assign):
            tracker.assign(step.partitions, step.at)
        elif isinstance(step, Observe):
            tracker.observe({p: Offsets(*o) for p, o in step.offsets.items()}, step.at)
        else:
            assert {s.partition for s in tracker.stalls(step.at)} == step.stalled, step


def test_check_reports_each_change_once() -> None:
    tracker: ProgressTracker[str] = ProgressTracker(STALL_AFTER)
    tracker.assign(["p"], 0)
    tracker.observe({"p": Offsets(3, 10)}, 0)
    first = tracker.check(31)
    assert [s.partition for s in first.newly_stalled] == ["p"] and not first.ok
    stall = first.stalled[0]
    assert (stall.lag, stall.committed, stall.end, stall.idle_s) == (7, 3, 10, 31)
    assert tracker.check(32).newly_stalled == ()
    tracker.observe({"p": Offsets(10, 10)}, 33)
    recovered = tracker.check(34)
    assert recovered.ok and recovered.recovered == ("p",)
    assert tracker.check(35).recovered == ()


def test_metrics_views() -> None:
    tracker: ProgressTracker[int] = ProgressTracker(STALL_AFTER)
    tracker.assign([0, 1], 0)
    tracker.assign([0, 1, 2], 5)
    tracker.observe({0: Offsets(0, 4), 1: Offsets(2, 2), 2: Offsets(1, 9)}, 5)
    assert tracker.rebalances == 2 and tracker.assigned == {0, 1, 2}
    assert tracker.seconds_without_progress(12) == 12  # partition 0, waiting since 0
    assert tracker.offsets()[2].lag == 8
    tracker.observe({0: Offsets(4, 4), 2: Offsets(9, 9)}, 13)
    assert tracker.seconds_without_progress(50) == 0


def test_stall_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ProgressTracker(0)


# Properties: a random history of observations of one partition, 1 s apart.
histories = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 3)),  # (commit advance, new messages)
    min_size=1,
    max_size=200,
)


def replay(history: list[tuple[int, int]], stall_after: float) -> list[bool]:
    """Feed the history; whether the partition is stalled after each step."""
    tracker: ProgressTracker[int] = ProgressTracker(stall_after)
    tracker.assign([0], 0)
    committed = end = 0
    stalled = []
    for second, (advance, arrived) in enumerate(history, start=1):
        end += arrived
        committed = min(committed + advance, end)
        tracker.observe({0: Offsets(committed, end)}, second)
        stalled.append(bool(tracker.stalls(second)))
    return stalled


@given(histories, st.integers(1, 20))
def test_stalled_exactly_when_lagging_with_no_progress_for_stall_after(
    history: list[tuple[int, int]], stall_after: int
) -> None:
    """A reference model: walk back from each second to the last one where the partition
    progressed (committed moved or it was caught up), or to the assignment at 0."""
    stalled = replay(history, stall_after)
    committed_at = [0]
    end_at = [0]
    for advance, arrived in history:
        end_at.append(end_at[-1] + arrived)
        committed_at.append(min(committed_at[-1] + advance, end_at[-1]))

    def progressed(t: int) -> bool:  # the first snapshot (t = 1) sets the baseline
        moved = t > 1 and committed_at[t] > committed_at[t - 1]
        return moved or end_at[t] == committed_at[t]

    for second in range(1, len(history) + 1):
        lagging = end_at[second] > committed_at[second]
        last = max((t for t in range(1, second + 1) if progressed(t)), default=0)
        assert stalled[second - 1] == (lagging and second - last >= stall_after)


@given(histories, st.integers(2, 20))  # more than the 1 s between observations
def test_a_worker_that_keeps_committing_is_never_stalled(
    history: list[tuple[int, int]], stall_after: int
) -> None:
    committing = [(max(advance, 1), arrived) for advance, arrived in history]
    assert not any(replay(committing, stall_after))
