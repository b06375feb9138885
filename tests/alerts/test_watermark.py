"""The watermark: per partition, their minimum, idle partitions, quiet streams. Fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.watermark import Watermark
from monitor.contract import NewsItem
from monitor.model.interface import Classification
from monitor.pipeline_types import ClassifiedItem, Origin, RawMessage
from monitor.processing import ClassifiedBatch, event_progress

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LATE = timedelta(minutes=2)


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("notes", "now", "expected"),
    [
        ([], 0, None),  # nothing seen: no window is closed
        ([({0: m(10)}, 0)], 1, m(8)),  # newest - allowed lateness
        ([({0: m(10), 1: m(4)}, 0)], 1, m(2)),  # the slowest partition holds it back
        ([({0: m(10), 1: m(4)}, 0), ({0: m(12)}, 50)], 61, m(10)),  # 1 idle: 0 alone
        ([({0: m(10)}, 0), ({0: m(3)}, 1)], 2, m(8)),  # a late item does not move it back
        ([({0: m(10)}, 0)], 59, m(8)),
        ([({0: m(10)}, 0)], 60, m(28)),  # all idle: up to the wall clock - allowed lateness
    ],
)
def test_watermark(notes: list, now: float, expected: datetime | None) -> None:
    mark = Watermark(LATE, timedelta(seconds=60))
    for newest, arrived in notes:
        mark.note(newest, arrived)
    assert mark.current(now, wall=m(30)) == expected


def test_finish_closes_everything() -> None:
    mark = Watermark(LATE, timedelta(seconds=60))
    mark.note({None: m(0)}, 0)
    mark.finish()
    assert mark.current(1, m(0)) > m(10**6)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 600), st.integers(0, 5)), max_size=40))
def test_never_moves_back(arrivals: list[tuple[int, int, int]]) -> None:
    mark = Watermark(LATE, timedelta(seconds=60))
    seen: list[datetime] = []
    clock = 0.0
    for partition, minute, pause in arrivals:
        clock += pause * 10
        mark.note({partition: m(minute)}, clock)
        current = mark.current(clock, m(clock / 60))
        assert current is not None
        seen.append(current)
    assert seen == sorted(seen)


def test_the_commit_path_reports_the_newest_item_per_partition() -> None:
    """What `Runtime.commit` feeds the watermark: redelivered items count too."""

    def classified(partition: int | None, minute: int) -> tuple[ClassifiedItem, RawMessage]:
        item = NewsItem(id=f"{partition}-{minute}", published_at=m(minute), headline="h")
        verdict = Classification("Macro", 0.9, "neutral", 0.0, {"neutral": 0.9}, "t")
        origin = None if partition is None else Origin("raw", partition, minute)
        return ClassifiedItem(item, verdict, origin), RawMessage(b"", origin)

    batch = ClassifiedBatch(T0, classified=[classified(0, 5), classified(0, 3), classified(1, 2)])
    assert event_progress(batch) == {0: m(5), 1: m(2)}
    assert event_progress(ClassifiedBatch(T0, classified=[classified(None, 7)])) == {None: m(7)}
