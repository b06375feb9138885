"""The pure parts of training: source specs, temperature-balanced sampling, batching of
views, the selection score, and calibration (ECE, temperature fitting)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model.calibration import expected_calibration_error, fit_temperature
from monitor.model.train import Source, make_batches, sampling_weights, selection_score


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("topic=data/tw_topic", Source("topic", Path("data/tw_topic"), "tw_topic")),
        ("sentiment:news=/x/sentfin", Source("sentiment", Path("/x/sentfin"), "news")),
    ],
)
def test_source_specs(spec: str, expected: Source) -> None:
    assert Source.parse(spec) == expected


@pytest.mark.parametrize("spec", ["topic", "mood=dir", "topic=", "=dir"])
def test_bad_source_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="TASK=DIR"):
        Source.parse(spec)


@pytest.mark.parametrize(
    ("sizes", "temperature", "expected"),
    [
        ([100, 300], 1.0, [0.25, 0.75]),
        ([100, 400], 2.0, [1 / 3, 2 / 3]),
        ([5, 5000], 1000.0, [0.5, 0.5]),
    ],
)
def test_sampling_weights(sizes: list[int], temperature: float, expected: list[float]) -> None:
    np.testing.assert_allclose(sampling_weights(sizes, temperature), expected, atol=0.01)


def features(n: int, length: int = 5) -> list[dict[str, list[int]]]:
    return [{"input_ids": [1] * (length + i % 7)} for i in range(n)]


@given(
    st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=4),
    st.sampled_from([1.0, 2.0, 5.0]),
    st.integers(min_value=0, max_value=2**16),
)
def test_batches_follow_the_weights_and_use_rows_evenly(
    sizes: list[int], temperature: float, seed: int
) -> None:
    views = [features(n) for n in sizes]
    batch_size = 8
    batches = make_batches(views, batch_size, temperature, np.random.default_rng(seed))
    total = sum(-(-n // batch_size) for n in sizes)
    weights = sampling_weights(sizes, temperature)
    per_view = Counter(v for v, _ in batches)
    for v, n in enumerate(sizes):
        assert per_view[v] == max(1, round(total * weights[v]))
        rows = Counter(i for view, index in batches if view == v for i in index)
        assert set(rows) <= set(range(n))
        # drawn from successive permutations: no row is used twice before all were used once
        assert max(rows.values()) - min(rows.values()) <= 1 or len(rows) < n
        assert all(len(index) <= batch_size for view, index in batches if view == v)


def test_batches_are_reproducible() -> None:
    views = [features(50), features(20)]
    first = make_batches(views, 8, 2.0, np.random.default_rng(7))
    assert first == make_batches(views, 8, 2.0, np.random.default_rng(7))


def test_selection_weighs_tasks_equally() -> None:
    scores = {
        "topic/tw": {"accuracy": 0.8, "macro_f1": 0.8},
        "sentiment/tw": {"accuracy": 0.6, "macro_f1": 0.6},
        "sentiment/news": {"accuracy": 0.4, "macro_f1": 0.4},
    }
    assert selection_score(scores) == pytest.approx((0.8 + 0.5) / 2)


def calibrated_sample(n: int, temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax at `temperature` is the true label distribution."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(n, 3)).astype(np.float32)
    scaled = logits / temperature
    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in probs])
    return logits, labels


def test_temperature_fitting_recovers_the_true_temperature() -> None:
    logits, labels = calibrated_sample(6000, 2.5, seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)
    before = expected_calibration_error(logits, labels)
    after = expected_calibration_error(logits / 2.5, labels)
    assert before > 0.05 > after


def test_ece_of_perfect_confident_predictions_is_zero() -> None:
    logits = np.array([[20.0, 0.0, 0.0], [0.0, 20.0, 0.0]], dtype=np.float32)
    assert expected_calibration_error(logits, np.array([0, 1])) == pytest.approx(0.0, abs=1e-6)
    assert expected_calibration_error(logits, np.array([1, 0])) == pytest.approx(1.0, abs=1e-6)
