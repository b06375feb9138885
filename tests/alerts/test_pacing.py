"""Rule evaluation pacing: pure logic on a fake monotonic clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.pacing import EvaluationPacer


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (action, keys, time) -> what that step hands out
        ([("add", "ab", 0.0)], ["ab"]),  # the first batch is judged at once
        ([("add", "a", 0.0), ("add", "b", 0.4)], ["a", ""]),  # then it waits
        ([("add", "a", 0.0), ("add", "b", 0.4), ("add", "c", 1.0)], ["a", "", "bc"]),
        ([("add", "a", 0.0), ("add", "b", 0.4), ("due", "", 0.9)], ["a", "", ""]),
        ([("add", "a", 0.0), ("add", "b", 0.4), ("due", "", 1.2)], ["a", "", "b"]),
        ([("add", "a", 0.0), ("add", "a", 1.5)], ["a", "a"]),
        ([("add", "a", 0.0), ("add", "ba", 0.5), ("due", "", 1.0)], ["a", "", "ba"]),
        ([("add", "a", 0.0), ("add", "b", 0.1), ("all", "", 0.2)], ["a", "", "b"]),
        ([("due", "", 5.0), ("add", "", 6.0)], ["", ""]),  # nothing pending, nothing out
        ([("add", "a", 0.0), ("back", "a", 0.1), ("add", "b", 0.2)], ["a", "", ""]),
        ([("add", "a", 0.0), ("back", "a", 0.1), ("add", "b", 1.0)], ["a", "", "ab"]),
    ],
)
def test_hand_outs(steps: list[tuple[str, str, float]], expected: list[str]) -> None:
    pacer: EvaluationPacer[str] = EvaluationPacer(1.0)
    out = []
    for action, keys, now in steps:
        if action == "add":
            out.append("".join(pacer.add(keys, now)))
        elif action == "due":
            out.append("".join(pacer.take_due(now)))
        elif action == "all":
            out.append("".join(pacer.take_all(now)))
        else:
            pacer.give_back(keys)
            out.append("")
    assert out == expected


def test_zero_interval_hands_out_every_batch() -> None:
    pacer: EvaluationPacer[str] = EvaluationPacer(0)
    assert [pacer.add(k, 0.0) for k in ("a", "b", "c")] == [["a"], ["b"], ["c"]]


def test_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        EvaluationPacer(-1)


@given(st.lists(st.tuples(st.sets(st.integers(0, 20), max_size=5), st.floats(0, 3)), max_size=40))
def test_every_key_added_is_handed_out_and_never_twice_between_adds(
    batches: list[tuple[set[int], float]],
) -> None:
    pacer: EvaluationPacer[int] = EvaluationPacer(1.0)
    now, handed, last_out = 0.0, set(), None
    added: set[int] = set()
    for keys, step in batches:
        now += step
        out = pacer.add(keys, now)
        added |= keys
        if out:
            assert last_out is None or now - last_out >= 1.0  # at most once per interval
            assert len(out) == len(set(out))
            last_out = now
        handed |= set(out)
    handed |= set(pacer.take_all(now + 0.1))
    assert handed == added and pacer.pending == 0
