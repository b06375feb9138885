"""A model soup: the averaged LoRA update, and the greedy choice of ingredients."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.model.soup import greedy_soup, mean_update


@settings(max_examples=60, deadline=None)
@given(
    out_dim=st.integers(1, 16),
    in_dim=st.integers(1, 16),
    ranks=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    scales=st.lists(st.sampled_from([0.5, 1.0, 2.0, 4.0]), min_size=4, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_the_pairs_side_by_side_are_the_mean_update(
    out_dim: int, in_dim: int, ranks: list[int], scales: list[float], seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    pairs = [
        (
            torch.randn(out_dim, r, generator=generator),
            torch.randn(r, in_dim, generator=generator),
            scale,
        )
        for r, scale in zip(ranks, scales, strict=False)
    ]
    b, a = mean_update(pairs)
    assert b.shape == (out_dim, sum(ranks)) and a.shape == (sum(ranks), in_dim)
    expected = torch.stack([s * b_i.double() @ a_i.double() for b_i, a_i, s in pairs]).mean(0)
    torch.testing.assert_close(b @ a, expected)


def _judge(scores: dict[str, float]) -> tuple[list[list[str]], Callable[[Sequence[str]], float]]:
    """A judge scoring a soup by the string of its members, and the soups it was asked for."""
    asked: list[list[str]] = []

    def judge(members: Sequence[str]) -> float:
        asked.append(list(members))
        return scores["".join(members)]

    return asked, judge


@pytest.mark.parametrize(
    ("scores", "members", "kept"),
    [
        # each candidate helps: all join
        ({"a": 0.80, "ab": 0.81, "abc": 0.82}, ["a", "b", "c"], [True, True, True]),
        # b would lower the score: left out, and c is tried without it
        ({"a": 0.80, "ab": 0.79, "ac": 0.81}, ["a", "c"], [True, False, True]),
        # a tie keeps the candidate (an average is no worse, and usually steadier)
        ({"a": 0.80, "ab": 0.80, "abc": 0.70}, ["a", "b"], [True, True, False]),
        # nothing helps: the soup is the best candidate alone
        ({"a": 0.80, "ab": 0.70, "ac": 0.75}, ["a"], [True, False, False]),
    ],
)
def test_greedy_soup_keeps_a_candidate_only_if_the_soup_does_not_fall(
    scores: dict[str, float], members: list[str], kept: list[bool]
) -> None:
    asked, judge = _judge(scores)
    got, trials = greedy_soup(["a", "b", "c"], judge)
    assert got == members
    assert [k for _, _, k in trials] == kept
    assert [t for t, _, _ in trials] == asked
    assert [v for _, v, _ in trials] == [scores["".join(t)] for t in asked]


def test_a_soup_of_one_is_judged_once() -> None:
    asked, judge = _judge({"a": 0.5})
    assert greedy_soup(["a"], judge) == (["a"], [(["a"], 0.5, True)])
    assert asked == [["a"]]
