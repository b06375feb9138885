"""The serving classifier, on the committed artifact."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from monitor.model.artifact import load_artifact
from monitor.model.batched import BatchedClassifier, load_classifier
from monitor.model.data import TOPIC_DATASET_LABELS
from monitor.model.encoding import (
    MAX_TARGET_TOKENS,
    encode_item,
    encode_items,
    token_balanced_slices,
)
from monitor.model.inference import softmax
from monitor.model.interface import SENTIMENT_LABELS, Classifier, ModelInput
from monitor.resources import bundled_artifact

LONG_BODY = "The company said revenue rose while costs were flat. " * 200


def test_implements_the_pipeline_protocol(real_model: BatchedClassifier) -> None:
    classifier: Classifier = real_model
    assert re.fullmatch(r"finmon-minilm-v6\+[0-9a-f]{12}", classifier.model_version)
    assert classifier.accepts_targets
    assert real_model.label_names == {
        "topic": list(TOPIC_DATASET_LABELS),
        "sentiment": list(SENTIMENT_LABELS),
    }


def test_results_are_well_formed(real_model: BatchedClassifier) -> None:
    (result,) = real_model.classify([ModelInput("Acme shares jump 10% after earnings beat")])
    assert result.topic in TOPIC_DATASET_LABELS
    assert 0.0 < result.topic_confidence <= 1.0
    assert set(result.sentiment_probs) == set(SENTIMENT_LABELS)
    assert sum(result.sentiment_probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.sentiment_score == pytest.approx(
        result.sentiment_probs["bullish"] - result.sentiment_probs["bearish"]
    )
    assert result.model_version == real_model.model_version


def test_clear_cases_are_classified_sensibly(real_model: BatchedClassifier) -> None:
    results = real_model.classify(
        [
            ModelInput("$XYZ shares plunge 30% after company slashes guidance"),
            ModelInput("$XYZ upgraded to Buy, price target raised to $150"),
            ModelInput("Oil prices rise as OPEC+ agrees deeper output cuts"),
        ]
    )
    assert results[0].sentiment == "bearish" and results[0].sentiment_score < -0.5
    assert results[1].sentiment == "bullish" and results[1].sentiment_score > 0.5
    assert results[2].topic == "Energy | Oil"


def test_long_body_is_truncated_and_headline_kept(real_model: BatchedClassifier) -> None:
    headline = "Acme beats estimates"
    (features,) = real_model.encode([ModelInput(headline, LONG_BODY)])
    assert len(features["input_ids"]) == real_model.max_length
    head_ids = real_model.tokenizer(headline)["input_ids"]  # [CLS] headline [SEP]
    assert features["input_ids"][: len(head_ids)] == head_ids
    assert real_model.classify([ModelInput(headline, LONG_BODY)])


def test_headline_longer_than_the_limit_is_cut_without_error(
    real_model: BatchedClassifier,
) -> None:
    long_headline = "markets " * 500
    features = real_model.encode([ModelInput(long_headline, LONG_BODY), ModelInput(long_headline)])
    assert all(len(f["input_ids"]) == real_model.max_length for f in features)


@pytest.mark.parametrize("headline", ["", "   ", "\n\t"])
def test_empty_headline_is_rejected_before_the_model(
    real_model: BatchedClassifier, headline: str
) -> None:
    with pytest.raises(ValueError, match="input 1: headline is empty"):
        real_model.classify([ModelInput("fine"), ModelInput(headline, "a body")])


def test_batch_results_equal_single_results_in_input_order(
    real_model: BatchedClassifier,
) -> None:
    inputs = [
        ModelInput("Fed raises rates by 25 basis points"),
        ModelInput("Acme", LONG_BODY),
        ModelInput("Gold slips as dollar firms https://t.co/abc"),
        ModelInput("Short"),
        ModelInput("Widget Co names new CEO after long search for a successor", "Body text."),
        ModelInput("Stocks fall"),
    ]
    batched = real_model.classify(inputs)  # max_batch_size=4: two padded chunks
    singles = [real_model.classify([item])[0] for item in inputs]
    for one, alone in zip(batched, singles, strict=True):
        assert one.topic == alone.topic and one.sentiment == alone.sentiment
        assert one.topic_confidence == pytest.approx(alone.topic_confidence, abs=1e-5)
        assert one.sentiment_score == pytest.approx(alone.sentiment_score, abs=1e-5)
    batch_probs = real_model.predict_probs(inputs)
    single_probs = [real_model.predict_probs([item]) for item in inputs]
    for task in ("topic", "sentiment"):
        stacked = np.vstack([p[task] for p in single_probs])
        np.testing.assert_allclose(batch_probs[task], stacked, atol=1e-5)


def test_url_only_differences_do_not_change_the_result(real_model: BatchedClassifier) -> None:
    a, b = real_model.classify(
        [ModelInput("Acme cut to Sell https://t.co/one"), ModelInput("Acme cut to Sell")]
    )
    assert a.sentiment_score == pytest.approx(b.sentiment_score, abs=1e-6)


def test_empty_input_list(real_model: BatchedClassifier) -> None:
    assert real_model.classify([]) == []


@given(
    st.lists(st.integers(1, 96), max_size=80),
    st.integers(1, 6),
    st.integers(1, 8),
)
def test_slices_partition_the_batch_in_length_order(
    lengths: list[int], parts: int, min_items: int
) -> None:
    slices = token_balanced_slices(lengths, parts, min_items)
    assert sorted(i for s in slices for i in s) == list(range(len(lengths)))
    assert all(slices) and len(slices) <= max(1, min(parts, len(lengths) // min_items))
    flat = [lengths[i] for s in slices for i in s]
    assert flat == sorted(flat)  # each slice holds similar lengths: little padding
    if slices:
        fair = sum(lengths) / len(slices)
        assert all(sum(lengths[i] for i in s) <= fair + max(lengths) for s in slices)


def test_split_batch_gives_the_same_results_as_one_thread(real_model: BatchedClassifier) -> None:
    split = BatchedClassifier(
        load_artifact(bundled_artifact()),
        device=torch.device("cpu"),
        max_batch_size=4,
        cpu_slices=3,
    )
    inputs = [ModelInput(f"Shares of company {i} " + "fall " * (i % 7)) for i in range(23)]
    inputs[5] = ModelInput("Acme", LONG_BODY)
    assert split.parallelism == "1-thread ops, 3 slices"
    ours, reference = split.predict_probs(inputs), real_model.predict_probs(inputs)
    for task in ("topic", "sentiment"):
        np.testing.assert_allclose(ours[task], reference[task], atol=1e-5)
    assert [c.topic for c in split.classify(inputs)] == [
        c.topic for c in real_model.classify(inputs)
    ]


def test_batched_tokenizing_gives_each_item_its_own_ids(real_model: BatchedClassifier) -> None:
    """encode_items tokenizes the plain items in one call; the ids must be what each
    item gets alone, bodies, targets and over-long headlines included."""
    tokenizer, limit = real_model.tokenizer, real_model.max_length
    items: list[tuple[str, str | None, str | None]] = [
        ("Acme beats estimates", None, None),
        ("markets " * 500, None, None),
        ("Acme beats estimates", LONG_BODY, None),
        ("$XYZ plunges 30%", "", None),
        ("Oil rises", "OPEC+ agrees deeper cuts", None),
        ("Acme gains, Widget slips", None, "Widget"),
        ("markets " * 500, LONG_BODY, "Acme " * 40),
        ("Fed holds rates", None, None),
    ]
    for marked in (False, True):
        assert encode_items(tokenizer, items, limit, marked) == [
            encode_item(tokenizer, headline, body or None, limit, target, marked)
            for headline, body, target in items
        ]
    assert encode_items(tokenizer, [], limit) == []


def test_marked_targets_change_only_targeted_inputs(real_model: BatchedClassifier) -> None:
    """With markers the targeted text is the marked one; untargeted inputs are unchanged."""
    tokenizer, limit = real_model.tokenizer, real_model.max_length
    marked = encode_item(tokenizer, "Acme gains, Widget slips", None, limit, "Widget", True)
    assert marked == dict(tokenizer("Acme gains, << Widget >> slips", "Widget"))
    assert encode_item(tokenizer, "Fed holds", None, limit, None, True) == encode_item(
        tokenizer, "Fed holds", None, limit
    )


def test_a_target_is_kept_whole_and_cut_last(real_model: BatchedClassifier) -> None:
    """The target is the second segment; an over-long text is cut, never the target (up to
    MAX_TARGET_TOKENS), and the result fits max_length."""
    tokenizer, limit = real_model.tokenizer, real_model.max_length
    target_ids = tokenizer("Widget Corp", add_special_tokens=False)["input_ids"]
    ids = encode_item(tokenizer, "markets " * 500, LONG_BODY, limit, "Widget Corp")["input_ids"]
    assert len(ids) == limit
    assert ids[-len(target_ids) - 1 : -1] == target_ids
    text_ids = tokenizer("Acme", add_special_tokens=False)["input_ids"]
    long_target = encode_item(tokenizer, "Acme", None, limit, "Acme " * 100)["input_ids"]
    assert long_target[1 : 1 + len(text_ids)] == text_ids
    assert len(long_target) == 1 + len(text_ids) + 1 + MAX_TARGET_TOKENS + 1


def test_targeted_inputs_take_the_targeted_temperature(
    real_model: BatchedClassifier, tmp_path: Path
) -> None:
    """An artifact with a temperature for targeted inputs: plain inputs keep the head's,
    targeted ones are divided by their own (here three times the head's)."""
    artifact = tmp_path / "targeted"
    shutil.copytree(bundled_artifact(), artifact)
    meta = json.loads((artifact / "finmon.json").read_text())
    head = meta["temperature"]["sentiment"]
    meta["targeted_temperature"] = {"sentiment": 3 * head}
    (artifact / "finmon.json").write_text(json.dumps(meta))
    model = load_classifier(artifact, device="cpu", threads=1, cpu_parallelism="intra-op")
    inputs = [
        ModelInput("Acme shares jump, Widget slips"),
        ModelInput("Acme shares jump, Widget slips", target="Widget"),
    ]
    raw = real_model.predict_logits(inputs)["sentiment"]
    probs = model.predict_probs(inputs)["sentiment"]
    np.testing.assert_allclose(probs[0], softmax(raw[:1], head)[0], atol=1e-5)
    np.testing.assert_allclose(probs[1], softmax(raw[1:], 3 * head)[0], atol=1e-5)
    assert model.predict_probs(inputs[:1])["sentiment"] == pytest.approx(
        real_model.predict_probs(inputs[:1])["sentiment"], abs=1e-5
    )
