"""Batch cutting: table-driven due times and a simulated worker on a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.batching import Batcher


def _filled(arrivals: list[tuple[float, int]], max_size: int = 4, max_wait: float = 0.2) -> Batcher:
    batcher: Batcher[str] = Batcher(max_size, max_wait)
    for at, count in arrivals:
        for _ in range(count):
            batcher.add("x", at)
    return batcher


@pytest.mark.parametrize(
    ("arrivals", "max_size", "max_wait", "due"),
    [
        ([], 4, 0.2, None),  # nothing waits
        ([(1.0, 1)], 4, 0.2, 1.2),  # one item: its arrival + max_wait
        ([(1.0, 2), (1.1, 1)], 4, 0.2, 1.2),  # the oldest item sets the deadline
        ([(1.0, 3), (1.05, 1)], 4, 0.2, 1.05),  # full at 1.05, before the deadline
        ([(1.0, 2), (1.3, 5)], 4, 0.2, 1.2),  # deadline first; filling later changes nothing
        ([(1.0, 9)], 4, 0.2, 1.0),  # full on arrival
        ([(1.0, 1)], 4, 0.0, 1.0),  # no wait: due on arrival
    ],
)
def test_due_at(
    arrivals: list[tuple[float, int]], max_size: int, max_wait: float, due: float | None
) -> None:
    batcher = _filled(arrivals, max_size, max_wait)
    assert batcher.due_at() == (pytest.approx(due) if due is not None else None)


@pytest.mark.parametrize(
    ("arrivals", "with_classifier", "due"),
    [
        ([], 1, None),
        ([(1.0, 1)], 1, None),  # partial: keeps filling while the classifier is busy
        ([(1.0, 3)], 1, None),  # long past its deadline, still partial
        ([(1.0, 3), (1.5, 2)], 1, 1.5),  # full at 1.5: queued behind the running batch
        ([(1.0, 9)], 1, 1.0),
        ([(1.0, 9)], 2, None),  # full, but the classifier's slots are taken
        ([(1.0, 1)], 2, None),
    ],
)
def test_while_busy_only_a_full_batch_is_due_and_only_into_a_free_slot(
    arrivals: list[tuple[float, int]], with_classifier: int, due: float | None
) -> None:
    assert _filled(arrivals).due_at(with_classifier) == due


def test_add_says_when_the_due_time_moved() -> None:
    batcher: Batcher[int] = Batcher(3, 0.1)
    # the first item starts the clock; the third fills the batch; the rest change nothing
    assert [batcher.add(i, 0.01 * i) for i in range(5)] == [True, False, True, False, False]
    batcher.take()
    assert batcher.due_at() == pytest.approx(0.13)  # item 3 is the oldest now
    batcher.take()
    assert batcher.add(5, 0.2) is True  # empty again: a new clock


def test_take_hands_out_the_oldest_items_up_to_the_size() -> None:
    batcher: Batcher[int] = Batcher(3, 0.1)
    for item, at in [(1, 0.0), (2, 0.0), (3, 0.05), (4, 0.05), (5, 0.05)]:
        batcher.add(item, at)
    assert batcher.take() == [1, 2, 3]
    assert len(batcher) == 2
    assert batcher.due_at() == pytest.approx(0.15)  # items 4 and 5 keep their own arrival
    assert batcher.take() == [4, 5]
    assert batcher.take() == []
    assert batcher.due_at() is None


@pytest.mark.parametrize(
    ("max_size", "max_wait", "slots"), [(0, 0.1, 2), (4, -0.1, 2), (4, 0.1, 0)]
)
def test_bad_settings_are_refused(max_size: int, max_wait: float, slots: int) -> None:
    with pytest.raises(ValueError):
        Batcher(max_size, max_wait, slots)


@settings(max_examples=300)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=200),
    max_size=st.integers(min_value=1, max_value=16),
    max_wait=st.floats(min_value=0.0, max_value=0.3),
    busy=st.floats(min_value=0.0, max_value=0.4),
    slots=st.integers(min_value=1, max_value=3),
)
def test_a_simulated_worker_loses_nothing_and_waits_only_for_a_busy_classifier(
    gaps: list[float], max_size: int, max_wait: float, busy: float, slots: int
) -> None:
    """One item arrives after each gap. The classifier runs the batches it is handed one
    after the other, `busy` seconds each; a batch is handed over the moment `due_at` says.
    Every item comes out once, in order, in batches of at most max_size; the classifier
    never holds more than `slots` batches; a partial batch goes only to an idle
    classifier; and an item waits past max_wait only while the classifier is busy."""
    arrivals: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        arrivals.append(now)
    batcher: Batcher[int] = Batcher(max_size, max_wait, slots)
    out: list[int] = []
    runs: list[tuple[float, float]] = []  # when the classifier ran each batch handed over
    now, next_item = 0.0, 0
    while len(out) < len(arrivals):
        held = [end for _, end in runs if end > now]
        due = batcher.due_at(len(held))
        take_at = max(now, due) if due is not None else math.inf
        arrival = arrivals[next_item] if next_item < len(arrivals) else math.inf
        done = held[0] if held else math.inf
        if arrival <= take_at and arrival <= done:
            now = arrival
            batcher.add(next_item, now)
            next_item += 1
            continue
        if done < take_at:
            now = done  # a batch finished: a slot is free, maybe the classifier is idle
            continue
        now = take_at
        batch = batcher.take()
        assert 1 <= len(batch) <= max_size
        assert len(held) < slots
        if len(batch) < max_size:  # cut by the clock: only to an idle classifier, and
            assert not held  # nothing that had arrived is left behind
            assert len(batcher) == 0
        deadline = arrivals[batch[0]] + max_wait
        assert now <= deadline + 1e-9 or _busy_throughout(runs, deadline, now)
        out.extend(batch)
        start = max(now, runs[-1][1]) if runs else now
        runs.append((start, start + busy))
    assert out == list(range(len(arrivals)))


def _busy_throughout(runs: list[tuple[float, float]], start: float, end: float) -> bool:
    """Whether back-to-back classifier runs cover [start, end]."""
    covered = start
    for run_start, run_end in runs:
        if run_start <= covered + 1e-9:
            covered = max(covered, run_end)
    return covered >= end - 1e-9
