"""The linear head solved on fixed features (monitor/model/head_fit.py) and the rule that
decides whether a refitted head replaces an artifact's own (monitor/model/refit.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional

from monitor.model.head_fit import fit_linear_head
from monitor.model.refit import L2_GRID, choose, search


def _problem(seed: int, rows: int = 60, dim: int = 5, classes: int = 3) -> tuple[np.ndarray, ...]:
    """Features with class-dependent means (overlapping), every class present."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % classes
    centres = rng.normal(size=(classes, dim)) * 2
    features = centres[labels] + rng.normal(size=(rows, dim)) * 3
    return features.astype(np.float32), labels


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), l2=st.sampled_from([1.0, 0.1, 0.01]))
def test_the_head_is_the_optimum_of_its_objective(seed: int, l2: float) -> None:
    """At the returned head the gradient of the penalised loss (over standardised features,
    the bias unpenalised) vanishes: the solver reached the optimum, and folding the
    standardisation into the weights kept the same function."""
    features, labels = _problem(seed)
    weight, bias = fit_linear_head(features, labels, 3, l2)
    x = torch.from_numpy(features).double()
    mean, std = x.mean(0), x.std(0, correction=0)
    std_weight = (torch.from_numpy(weight).double() * std).requires_grad_()
    std_bias = torch.from_numpy(bias).double() + torch.from_numpy(weight).double() @ mean
    std_bias.requires_grad_()
    logits = ((x - mean) / std) @ std_weight.T + std_bias
    penalty = l2 / 2 * std_weight.pow(2).sum()
    loss = functional.cross_entropy(logits, torch.from_numpy(labels)) + penalty
    loss.backward()
    assert std_weight.grad is not None and std_bias.grad is not None
    assert float(std_weight.grad.abs().max()) < 1e-3
    assert float(std_bias.grad.abs().max()) < 1e-3


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_rescaling_or_shifting_a_feature_does_not_change_the_head_s_outputs(seed: int) -> None:
    features, labels = _problem(seed)
    rng = np.random.default_rng(seed + 1)
    scale = rng.uniform(0.1, 10, size=features.shape[1]).astype(np.float32)
    shift = rng.normal(size=features.shape[1]).astype(np.float32) * 5
    moved = features * scale + shift
    weight, bias = fit_linear_head(features, labels, 3, 0.1)
    moved_weight, moved_bias = fit_linear_head(moved, labels, 3, 0.1)
    np.testing.assert_allclose(
        moved @ moved_weight.T + moved_bias, features @ weight.T + bias, atol=2e-3
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_a_row_twice_weighs_as_that_row_with_double_weight(seed: int) -> None:
    features, labels = _problem(seed, rows=30)
    doubled = fit_linear_head(
        np.concatenate([features, features[:5]]), np.concatenate([labels, labels[:5]]), 3, 0.1
    )
    weights = np.ones(len(labels))
    weights[:5] = 2
    weighted = fit_linear_head(features, labels, 3, 0.1, weights)
    np.testing.assert_allclose(
        features @ doubled[0].T + doubled[1], features @ weighted[0].T + weighted[1], atol=2e-3
    )


def test_a_stronger_penalty_gives_a_smaller_head() -> None:
    features, labels = _problem(7)
    norms = [np.linalg.norm(fit_linear_head(features, labels, 3, l2)[0]) for l2 in (1.0, 0.1, 0.01)]
    assert norms[0] < norms[1] < norms[2]


def test_separable_rows_are_all_fitted() -> None:
    features = np.array([[0.0, 1.0], [0.1, 1.2], [3.0, 0.0], [3.2, 0.1], [0.0, -3.0], [0.2, -3.1]])
    labels = np.array([0, 0, 1, 1, 2, 2])
    weight, bias = fit_linear_head(features.astype(np.float32), labels, 3, 1e-3)
    assert (features @ weight.T + bias).argmax(axis=1).tolist() == labels.tolist()
    assert weight.dtype == bias.dtype == np.float32 and weight.shape == (3, 2)


def test_the_same_inputs_give_the_same_head() -> None:
    features, labels = _problem(3)
    first, second = (fit_linear_head(features, labels, 3, 0.1) for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.zeros((4, 2)), np.array([0, 1, 0, 1]), r"class\(es\) \[2\]"),
        (np.zeros((4, 2)), np.array([0, 1, 2]), "one label per row"),
        (np.zeros(4), np.array([0, 1, 2, 0]), "one label per row"),
    ],
)
def test_refuses_what_it_cannot_fit(features: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_linear_head(features.astype(np.float32), labels, 3, 0.1)


@pytest.mark.parametrize(
    ("before", "grid", "chosen"),
    [
        (0.80, {0.1: 0.81, 0.01: 0.83, 0.001: 0.82}, 0.01),  # the best of the grid
        (0.80, {0.1: 0.82, 0.01: 0.82}, 0.1),  # equal scores: the first (strongest)
        (0.83, {0.1: 0.81, 0.01: 0.83}, None),  # no better than the original: kept
        (0.85, {0.1: 0.81}, None),
        (0.0, {0.003: 0.5}, 0.003),
    ],
)
def test_a_refitted_head_replaces_the_original_only_when_it_scores_above_it(
    before: float, grid: dict[float, float], chosen: float | None
) -> None:
    assert choose(before, grid) == chosen


def _peak_at(peak: float) -> Callable[[float], float]:
    """A held-out score that rises towards ``peak`` (in log penalty) and falls past it."""
    return lambda l2: -abs(math.log10(l2) - math.log10(peak))


@pytest.mark.parametrize(
    ("peak", "tried"),
    [
        (0.01, L2_GRID),  # an inner optimum: the grid alone
        (0.1, L2_GRID),  # the strong end is the grid's own start: nothing added
        (0.0003, (*L2_GRID, 0.0003, 0.0001)),  # past the weak end, until the score falls
        (1e-4, (*L2_GRID, 0.0003, 0.0001, 3e-05)),
        (1e-9, (*L2_GRID, 0.0003, 0.0001, 3e-05)),  # at most three more
    ],
)
def test_the_search_goes_past_the_weak_end_only_while_the_best_is_there(
    peak: float, tried: tuple[float, ...]
) -> None:
    calls: list[float] = []

    def score_of(l2: float) -> float:
        calls.append(l2)
        return _peak_at(peak)(l2)

    scores = search(score_of, L2_GRID)
    assert list(scores) == calls == list(tried)
    assert max(scores, key=lambda l2: scores[l2]) == min(tried, key=lambda l2: abs(l2 - peak))


def test_a_search_needs_two_penalties() -> None:
    with pytest.raises(ValueError, match="at least two"):
        search(lambda l2: 0.0, [0.1])


def test_a_flat_score_stays_on_the_grid() -> None:
    """Equal scores pick the strongest penalty, so a tie at the weak end is no reason to
    go past it."""
    assert list(search(lambda l2: 0.5, L2_GRID)) == list(L2_GRID)
    rising_then_flat = {0.1: 0.1, 0.03: 0.2, 0.01: 0.3, 0.003: 0.3, 0.001: 0.3}
    assert list(search(rising_then_flat.__getitem__, L2_GRID)) == list(L2_GRID)
