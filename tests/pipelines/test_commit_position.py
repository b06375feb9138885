"""The committed offset moves only through a run of acked offsets that starts at it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.commit_position import commit_position


@pytest.mark.parametrize(
    ("floor", "acked", "position", "waiting"),
    [
        (10, [], 10, []),
        (10, [10, 11, 12], 13, []),
        (10, [12, 11, 10], 13, []),  # order of acks does not matter
        (10, [11], 10, [11]),  # a hole of one offset holds the position (Faust passed it)
        (10, [11, 12, 14], 10, [11, 12, 14]),
        (10, [10, 11, 13, 14], 12, [13, 14]),  # stops at the first hole, keeps what is above
        (10, [8, 9, 10], 11, []),  # acked again below the floor after a seek: dropped
        (10, [10, 10, 11], 12, []),  # the same offset acked twice counts once
        (0, [0], 1, []),
    ],
)
def test_positions(floor: int, acked: list[int], position: int, waiting: list[int]) -> None:
    assert commit_position(floor, acked) == (position, waiting)


@given(
    floor=st.integers(0, 1_000),
    acked=st.lists(st.integers(0, 1_100), max_size=60),
)
def test_never_passes_an_offset_not_acked(floor: int, acked: list[int]) -> None:
    position, waiting = commit_position(floor, acked)
    assert position >= floor
    assert set(range(floor, position)) <= set(acked)  # everything passed was finished
    assert position not in acked  # and it stops at the first that is not
    assert waiting == sorted({a for a in acked if a > position})


@given(
    floor=st.integers(0, 100),
    first=st.lists(st.integers(0, 150), max_size=30),
    second=st.lists(st.integers(0, 150), max_size=30),
)
def test_acks_may_come_in_any_split(floor: int, first: list[int], second: list[int]) -> None:
    # committing after some acks and again after the rest ends where committing once would
    position, waiting = commit_position(floor, first)
    assert commit_position(position, waiting + second) == commit_position(floor, first + second)
