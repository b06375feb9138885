"""The pause figures of a fault run (tests/cluster/pauses.py), on hand-made timelines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.cluster.pauses import Pause, pauses, summarise

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_first_progress_and_longest_gap_per_partition() -> None:
    stores = [(0, at(s)) for s in (0, 1, 2, 13, 14, 15, 21, 22)] + [
        (1, at(s)) for s in (0.5, 1.5, 2.5, 3.5, 9, 10, 20.5, 21.5)
    ]
    faults = [("kill", at(3)), ("join", at(20))]
    found = pauses(stores, faults, end=at(30))
    assert found == [
        Pause("kill", 0, 10.0, 10.0),  # nothing from 3 until 13
        Pause("kill", 1, 0.5, 5.5),  # went on at 3.5, then stopped from 3.5 to 9
        Pause("join", 0, 1.0, 1.0),
        Pause("join", 1, 0.5, 1.0),
    ]
    rows = {s.fault: s for s in summarise(found)}
    assert rows["kill"].first_progress_max_s == 10 and rows["kill"].longest_gap_p50_s == 7.75
    assert rows["all"].partitions == 2 and rows["all"].first_progress_max_s == 10


def test_a_partition_that_never_resumed_counts_until_the_end() -> None:
    found = pauses([(0, at(1))], [("broker", at(2))], end=at(60))
    assert found == [Pause("broker", 0, 58.0, 58.0)]
