"""Batch cutting: table-driven due times and a simulated worker on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.batching import Batcher


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
    batcher: Batcher[str] = Batcher(max_size, max_wait)
    for at, count in arrivals:
        batcher.add(["x"] * count, at)
    assert batcher.due_at() == (pytest.approx(due) if due is not None else None)


@pytest.mark.parametrize(
    ("arrivals", "due"),
    [
        ([], None),
        ([(1.0, 1)], None),  # partial: keeps filling while the classifier is busy
        ([(1.0, 3)], None),  # long past its deadline, still partial
        ([(1.0, 3), (1.5, 2)], 1.5),  # full at 1.5: queued behind the running batch
        ([(1.0, 9)], 1.0),
    ],
)
def test_while_busy_only_a_full_batch_is_due(
    arrivals: list[tuple[float, int]], due: float | None
) -> None:
    batcher: Batcher[str] = Batcher(4, 0.2)
    for at, count in arrivals:
        batcher.add(["x"] * count, at)
    assert batcher.due_at(busy=True) == due


def test_take_hands_out_the_oldest_items_up_to_the_size() -> None:
    batcher: Batcher[int] = Batcher(3, 0.1)
    batcher.add([1, 2], 0.0)
    batcher.add([3, 4, 5], 0.05)
    assert batcher.take() == [1, 2, 3]
    assert len(batcher) == 2
    assert batcher.due_at() == pytest.approx(0.15)  # items 4 and 5 keep their own arrival
    assert batcher.take() == [4, 5]
    assert batcher.take() == []
    assert batcher.due_at() is None


@pytest.mark.parametrize(("max_size", "max_wait"), [(0, 0.1), (4, -0.1)])
def test_bad_settings_are_refused(max_size: int, max_wait: float) -> None:
    with pytest.raises(ValueError):
        Batcher(max_size, max_wait)


@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=200),
    max_size=st.integers(min_value=1, max_value=16),
    max_wait=st.floats(min_value=0.0, max_value=0.3),
    busy=st.floats(min_value=0.0, max_value=0.4),
)
def test_a_simulated_worker_loses_nothing_and_waits_only_for_a_busy_classifier(
    gaps: list[float], max_size: int, max_wait: float, busy: float
) -> None:
    """One item arrives after each gap; the classifier takes a due batch the moment it is
    free and is then busy for `busy` seconds. Every item comes out once, in order, in
    batches of at most max_size; an item waits past max_wait only while the classifier is
    busy with an earlier batch."""
    arrivals: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        arrivals.append(now)
    batcher: Batcher[int] = Batcher(max_size, max_wait)
    out: list[int] = []
    free_at, next_item = 0.0, 0
    while len(out) < len(arrivals):
        due = batcher.due_at()
        upcoming = arrivals[next_item] if next_item < len(arrivals) else None
        start = max(free_at, due) if due is not None else None
        if upcoming is not None and (start is None or upcoming <= start):
            batcher.add([next_item], upcoming)  # the next arrival comes first
            next_item += 1
            continue
        assert start is not None
        batch = batcher.take()
        assert 1 <= len(batch) <= max_size
        oldest_wait = start - arrivals[batch[0]]
        assert oldest_wait <= max_wait + 1e-9 or start == free_at  # late only behind a batch
        if len(batch) < max_size:  # cut by the clock: nothing that had arrived is left behind
            assert len(batcher) == 0
        out.extend(batch)
        free_at = start + busy
    assert out == list(range(len(arrivals)))
