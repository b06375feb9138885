"""Rule evaluation pacing: pure logic on a fake monotonic clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.pacing import EvaluationPacer


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (action, keys, time): "add" notes keys, "due"/"all" hand out, "back" gives back
        ([("add", "ab", 0.0), ("due", "", 0.0)], ["", "ab"]),  # the first hand-out is at once
        (
            [("add", "a", 0.0), ("due", "", 0.0), ("add", "b", 0.2), ("due", "", 0.9)],
            ["", "a", "", ""],
        ),
        (
            [("add", "a", 0.0), ("due", "", 0.0), ("add", "b", 0.2), ("due", "", 1.0)],
            ["", "a", "", "b"],
        ),
        ([("add", "ab", 0.0), ("add", "ca", 0.1), ("due", "", 0.2)], ["", "", "abc"]),  # once each
        (
            [("add", "a", 0.0), ("due", "", 0.0), ("add", "b", 0.1), ("all", "", 0.2)],
            ["", "a", "", "b"],
        ),
        ([("due", "", 5.0), ("due", "", 9.0)], ["", ""]),  # nothing pending, nothing out
        (
            [("add", "a", 0.0), ("due", "", 0.0), ("back", "a", 0.1), ("due", "", 0.5)],
            ["", "a", "", ""],
        ),
        (
            [
                ("add", "a", 0.0),
                ("due", "", 0.0),
                ("back", "a", 0.1),
                ("add", "b", 0.2),
                ("due", "", 1.0),
            ],
            ["", "a", "", "", "ab"],
        ),
    ],
)
def test_hand_outs(steps: list[tuple[str, str, float]], expected: list[str]) -> None:
    pacer: EvaluationPacer[str] = EvaluationPacer(1.0)
    out = []
    for action, keys, now in steps:
        if action == "add":
            pacer.add(keys)
            out.append("")
        elif action == "due":
            out.append("".join(pacer.take_due(now)))
        elif action == "all":
            out.append("".join(pacer.take_all(now)))
        else:
            pacer.give_back(keys)
            out.append("")
    assert out == expected


def test_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        EvaluationPacer(-1)


@given(st.lists(st.tuples(st.sets(st.integers(0, 20), max_size=5), st.floats(0, 3)), max_size=40))
def test_every_key_noted_is_handed_out_once_and_at_most_once_per_interval(
    batches: list[tuple[set[int], float]],
) -> None:
    pacer: EvaluationPacer[int] = EvaluationPacer(1.0)
    now, last_out = 0.0, None
    added: set[int] = set()
    handed: list[int] = []
    for keys, step in batches:
        now += step
        pacer.add(keys)
        added |= keys
        out = pacer.take_due(now)
        if out:
            assert last_out is None or now - last_out >= 1.0
            last_out = now
        handed += out
    handed += pacer.take_all(now + 0.1)
    assert set(handed) == added and pacer.pending == 0
