"""The pure parts of training: source specs, temperature-balanced sampling, batching of
views, cross-task views, the loss, the selection score, and calibration (ECE, temperature
fitting, the temperatures of plain and targeted inputs)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from monitor.model.artifact import write_json
from monitor.model.calibration import (
    Temperatures,
    expected_calibration_error,
    fit_temperature,
    reliability,
)
from monitor.model.data import model_label_names
from monitor.model.train import (
    Source,
    Split,
    TrainConfig,
    TrainingRefused,
    View,
    calibrate,
    check_same_split,
    choose_teachers,
    cross_task_views,
    make_batches,
    prepare_views,
    sampling_weights,
    selection_score,
    split_of,
    temperatures_of,
    training_loss,
    with_temperatures,
)
from tests.model.conftest import FIXTURES


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


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"holdout_fraction": 0.1, "seed": 7, "split_seed": 13}, Split(0.1, 13)),
        ({"holdout_fraction": 0.2, "seed": 7}, Split(0.2, 7)),  # before split_seed: the seed
        ({"holdout_fraction": 0.1, "split_seed": 13, "max_train_rows": None}, Split(0.1, 13)),
        ({"holdout_fraction": 0.1, "split_seed": 13, "max_train_rows": 400}, Split(0.1, 13, 400)),
    ],
)
def test_split_of_an_artifact(config: dict[str, float], expected: Split) -> None:
    assert split_of({"training": {"config": config}}) == expected


@pytest.mark.parametrize(
    ("theirs", "message"),
    [
        ({"split_seed": 13}, None),
        ({"split_seed": 7}, "holdout fraction 0.1 with split seed 7, this run"),
        ({"split_seed": 13, "max_train_rows": 400}, "0.1 of 400 rows with split seed 13"),
        ({"split_seed": 13, "holdout_fraction": 0.2}, "holdout fraction 0.2 with split"),
    ],
)
def test_an_artifact_of_another_split_is_refused(
    tmp_path: Path, theirs: dict[str, Any], message: str | None
) -> None:
    """Fraction, seed and row cap all decide which rows are held out (a capped run splits
    its sample); an artifact differing in any of them has trained on this run's slices."""
    write_json(
        tmp_path / "finmon.json",
        {"format": 1, "name": "a", "training": {"config": {"holdout_fraction": 0.1, **theirs}}},
    )
    cfg = TrainConfig(holdout_fraction=0.1, split_seed=13)
    if message is None:
        check_same_split([tmp_path], cfg)
    else:
        with pytest.raises(TrainingRefused, match=message):
            check_same_split([tmp_path], cfg)


def test_split_of_an_artifact_without_a_training_record_is_unknown() -> None:
    assert split_of({"name": "external"}) is None


def test_the_early_stopping_split_follows_the_split_seed_not_the_seed() -> None:
    source = Source("sentiment", FIXTURES / "news")
    names = model_label_names("sentiment", source.data_dir)

    def held_out(cfg: TrainConfig) -> list[list[str]]:
        return [sorted(view.dev["text"]) for view in prepare_views(source, names, cfg)]

    assert held_out(TrainConfig(seed=1)) == held_out(TrainConfig(seed=2))
    assert held_out(TrainConfig(split_seed=1)) != held_out(TrainConfig(split_seed=2))


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


def rows(texts: list[str], targets: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {"text": texts, "target": targets or [""] * len(texts), "label": [0] * len(texts)}
    )


def test_cross_task_views_lend_untargeted_rows_to_the_other_task() -> None:
    topic = View("topic", "topic/tw", rows(["a", "b"]), rows(["c"]))
    entity = View("sentiment", "sentiment/news", rows(["x", "x"], ["A", "B"]), rows(["y"], ["A"]))
    headline = View("sentiment", "sentiment/news/headline", rows(["z"]), rows(["w"]))
    lent = cross_task_views([topic, entity, headline])
    assert [(v.task, v.name, v.gold) for v in lent] == [
        ("sentiment", "sentiment/soft:topic/tw", False),
        ("topic", "topic/soft:sentiment/news/headline", False),
    ]
    # the same rows (so the teacher and the tokenizer read them once), nothing held out
    assert lent[0].train is topic.train and lent[1].train is headline.train
    assert all(v.dev.empty for v in lent)
    assert cross_task_views(lent) == []  # soft views lend nothing further


def test_loss_mixes_gold_and_teacher_and_learns_from_the_teacher_alone_without_gold() -> None:
    cfg = TrainConfig(distill_weight=0.25, distill_temperature=2.0)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 1])
    soft = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    gold = torch.nn.functional.cross_entropy(logits, labels)
    kl = training_loss(logits, None, soft, cfg)
    expected_kl = (soft * (soft.log() - (logits / 2).log_softmax(-1))).sum(-1).mean() * 4
    assert kl == pytest.approx(float(expected_kl), rel=1e-5)
    assert training_loss(logits, labels, None, cfg) == pytest.approx(float(gold))
    assert training_loss(logits, labels, soft, cfg) == pytest.approx(float(0.75 * gold + 0.25 * kl))
    with pytest.raises(ValueError, match="needs a teacher"):
        training_loss(logits, None, None, cfg)


def one_hot(predicted: list[int], confidence: float = 0.8) -> np.ndarray:
    probs = np.full((len(predicted), 3), (1 - confidence) / 2)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


LABELS = np.array([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize(
    ("teachers", "expected"),
    [
        # the right teacher alone beats any average with a wrong one
        ([one_hot([0, 1, 2, 0, 1, 2]), one_hot([1, 2, 0, 1, 2, 0])], (0,)),
        ([one_hot([1, 2, 0, 1, 2, 0]), one_hot([0, 1, 2, 0, 1, 2])], (1,)),
        # two half-right teachers, each sure where it is right: together they are right
        (
            [
                np.vstack([one_hot([0, 1, 2], 0.9), one_hot([1, 2, 0], 0.4)]),
                np.vstack([one_hot([1, 2, 0], 0.4), one_hot([0, 1, 2], 0.9)]),
            ],
            (0, 1),
        ),
        # equal teachers: the smaller subset
        ([one_hot([0, 1, 2, 0, 1, 2]), one_hot([0, 1, 2, 0, 1, 2])], (0,)),
    ],
)
def test_choose_teachers(teachers: list[np.ndarray], expected: tuple[int, ...]) -> None:
    assert choose_teachers(teachers, LABELS, ["a", "b", "c"]) == expected


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


@pytest.mark.parametrize(
    ("meta", "plain", "targeted"),
    [
        ({}, 1.0, 1.0),
        ({"temperature": {"sentiment": 1.5}}, 1.5, 1.5),
        ({"temperature": {"sentiment": 1.5}, "targeted_temperature": {"sentiment": 2.0}}, 1.5, 2.0),
        ({"temperature": {"topic": 1.5}, "targeted_temperature": {"topic": 2.0}}, 1.0, 1.0),
    ],
    ids=["none", "head only", "head and targeted", "another head"],
)
def test_temperatures_of_an_artifact(meta: dict[str, dict[str, float]], plain: float,
                                     targeted: float) -> None:  # fmt: skip
    temperatures = Temperatures.from_meta(meta)
    assert (temperatures.of("sentiment"), temperatures.of("sentiment", True)) == (plain, targeted)


PLAIN = {"temperature": 1.0}
TARGETED = {"temperature": 1.4, "targeted": {"temperature": 1.8}}


@pytest.mark.parametrize(
    ("meta", "calibration", "expected"),
    [
        (
            {"name": "a"},
            {"sentiment": TARGETED},
            {
                "name": "a",
                "temperature": {"sentiment": 1.4},
                "targeted_temperature": {"sentiment": 1.8},
            },
        ),
        (
            {
                "name": "a",
                "temperature": {"sentiment": 1.4},
                "targeted_temperature": {"sentiment": 1.8},
            },
            {"sentiment": PLAIN, "topic": PLAIN},
            {"name": "a", "temperature": {"sentiment": 1.0, "topic": 1.0}},
        ),
        (
            {"name": "a", "temperature": {"topic": 2.0}, "targeted_temperature": {"topic": 3.0}},
            {"topic": PLAIN, "sentiment": TARGETED},
            {
                "name": "a",
                "temperature": {"topic": 1.0, "sentiment": 1.4},
                "targeted_temperature": {"sentiment": 1.8},
            },
        ),
    ],
    ids=["added", "a stale targeted temperature dropped", "replaced, not merged"],
)
def test_a_new_calibration_replaces_every_temperature(
    meta: dict[str, Any], calibration: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Soups and recalibrations start from another artifact's meta: a targeted
    temperature the new calibration does not fit must not survive from it."""
    assert with_temperatures(meta, calibration) == expected


@given(
    st.lists(
        st.tuples(*[st.integers(-200, 200).map(lambda v: v / 10)] * 3, st.booleans()),
        min_size=1,
        max_size=20,
    ),
    st.floats(0.1, 10),
    st.floats(0.1, 10),
)
def test_each_row_is_divided_by_its_kinds_temperature_and_keeps_its_argmax(
    rows: list[tuple[float, float, float, bool]], plain: float, targeted: float
) -> None:
    logits = np.array([r[:3] for r in rows], dtype=np.float32)
    kinds = np.array([r[3] for r in rows])
    temperatures = Temperatures({"sentiment": plain}, {"sentiment": targeted})
    scaled = temperatures.scale(logits, "sentiment", kinds)
    assert scaled.dtype == logits.dtype
    for row, is_targeted in enumerate(kinds):
        expected = logits[row] / np.float32(targeted if is_targeted else plain)
        np.testing.assert_array_equal(scaled[row], expected)
    np.testing.assert_array_equal(scaled.argmax(axis=1), logits.argmax(axis=1))


def _calibration_view(n_plain: int, n_single: int, n_multi: int, seed: int) -> View:
    """Held-out sentiment rows: plain, targeted single-entity and targeted multi-entity."""
    kinds = [("", 0)] * n_plain + [("acme", 1)] * n_single + [("acme", 2)] * n_multi
    dev = pd.DataFrame(
        {
            "text": [f"row {i}" for i in range(len(kinds))],
            "label": np.random.default_rng(seed).integers(0, 3, len(kinds)),
            "target": [t for t, _ in kinds],
            "n_entities": [n for _, n in kinds],
        }
    )
    view = View("sentiment", "sentiment/news", dev.iloc[0:0], dev)
    view.dev_features = [{"input_ids": [i]} for i in range(len(dev))]
    return view


@pytest.mark.parametrize(
    ("n_single", "n_multi", "multi_t", "expect_targeted"),
    [
        (300, 600, 4.0, True),
        (300, 0, 4.0, False),  # no multi-entity rows: nothing serving would target
        (0, 0, 4.0, False),
    ],
)
def test_calibration_fits_targeted_inputs_on_the_multi_entity_rows(
    n_single: int, n_multi: int, multi_t: float, expect_targeted: bool
) -> None:
    """Plain and single-entity rows are calibrated at T=1.5, multi-entity ones at 4: the
    head's temperature is fitted on all rows and the targeted one on the multi-entity
    rows alone."""
    view = _calibration_view(1500, n_single, n_multi, seed=3)
    plain_logits, plain_labels = calibrated_sample(1500 + n_single, 1.5, seed=4)
    multi_logits, multi_labels = calibrated_sample(n_multi, multi_t, seed=5)
    logits = np.concatenate([plain_logits, multi_logits])
    view.dev["label"] = np.concatenate([plain_labels, multi_labels]).astype(int)
    report = calibrate({view.name: logits}, [view], TrainConfig())
    sentiment = report["sentiment"]
    assert sentiment["temperature"] == fit_temperature(logits, view.dev["label"].to_numpy())
    assert ("targeted" in sentiment) is expect_targeted
    entries = temperatures_of(report)
    assert entries["temperature"] == {"sentiment": sentiment["temperature"]}
    if expect_targeted:
        targeted = sentiment["targeted"]
        assert targeted["temperature"] == fit_temperature(multi_logits, multi_labels)
        assert targeted["temperature"] == pytest.approx(multi_t, rel=0.15)
        assert targeted["rows"] == n_multi and targeted["ece_after"] < targeted["ece_before"]
        assert entries["targeted_temperature"] == {"sentiment": targeted["temperature"]}
    else:
        assert "targeted_temperature" not in entries


def test_a_calibrated_head_gets_no_temperatures_of_its_own() -> None:
    """Below ``max_ece`` neither temperature is fitted, targeted rows or not."""
    view = _calibration_view(1500, 0, 600, seed=3)
    logits, labels = calibrated_sample(2100, 1.0, seed=6)
    view.dev["label"] = labels
    report = calibrate({view.name: logits}, [view], TrainConfig())
    assert report["sentiment"]["temperature"] == 1.0 and "targeted" not in report["sentiment"]


def test_reliability_bins_rows_by_confidence_and_ece_weighs_their_gaps() -> None:
    """Two rows at ~1.0 confidence (one right), two at 1/3 (one right of each class)."""
    sure = [20.0, 0.0, 0.0]
    logits = np.array([sure, sure, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    bins = reliability(logits, np.array([0, 1, 0, 2]), bins=10)
    assert [(round(c, 3), a, s) for c, a, s in bins] == [(0.333, 0.5, 0.5), (1.0, 0.5, 0.5)]
    expected = 0.5 * abs(1 / 3 - 0.5) + 0.5 * abs(1.0 - 0.5)
    assert expected_calibration_error(logits, np.array([0, 1, 0, 2]), bins=10) == pytest.approx(
        expected, abs=1e-6
    )
