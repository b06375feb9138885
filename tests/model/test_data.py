"""CSV loading, label parsing, normalisation and the dedup / hold-out splits."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model.data import (
    TOPIC_DATASET_LABELS,
    contrast_pairs,
    dedup_against,
    has_targets,
    headline_rows,
    holdout_split,
    load_split,
    model_label_names,
    parse_labels,
    resolve_duplicates,
)
from monitor.model.interface import SENTIMENT_LABELS
from monitor.model.text import mark_mentions, normalise_text
from tests.conftest import SHARED_DATA, needs_shared_data
from tests.model.conftest import FIXTURES

SENTIMENT_IDS = {0: "Bearish", 1: "Bullish", 2: "Neutral"}


@pytest.mark.parametrize(
    ("text", "target", "marked"),
    [
        ("Acme gains, Widget slips", "Widget", "Acme gains, << Widget >> slips"),
        ("Widget up; widget down", "WIDGET", "<< Widget >> up; << widget >> down"),
        ("Tata Motors rises", "tata motors", "<< Tata Motors >> rises"),
        ("$BA up, BA down", "BA", "<< $BA >> up, << BA >> down"),
        ("BAT and ABA rally", "BA", "BAT and ABA rally"),
        ("S&P 500 (SPX) dips", "S&P 500", "<< S&P 500 >> (SPX) dips"),
        ("no mention here", "Acme", "no mention here"),
    ],
)
def test_mark_mentions_wraps_whole_word_mentions_only(text: str, target: str, marked: str) -> None:
    assert mark_mentions(text, target) == marked


def test_normalise_strips_links_entities_and_odd_whitespace() -> None:
    raw = "  Fed\u00a0hikes &amp; stocks fall https://t.co/AbC123 \n see www.example.com/x "
    assert normalise_text(raw) == "Fed hikes & stocks fall see"


def test_sentiment_ids_map_by_name_not_by_position() -> None:
    # dataset: 0 Bearish, 1 Bullish, 2 Neutral; model: bearish, neutral, bullish
    got = parse_labels([0, 1, 2, "1"], "sentiment", SENTIMENT_LABELS, SENTIMENT_IDS)
    assert [SENTIMENT_LABELS[i] for i in got] == ["bearish", "bullish", "neutral", "bullish"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Bearish", "bearish"),
        ("NEGATIVE", "bearish"),
        (" positive ", "bullish"),
        ("Neutral", "neutral"),
    ],
)
def test_sentiment_names_and_synonyms_case_insensitive(raw: str, expected: str) -> None:
    (index,) = parse_labels([raw], "sentiment", SENTIMENT_LABELS, SENTIMENT_IDS)
    assert SENTIMENT_LABELS[index] == expected


def test_topic_names_case_insensitive() -> None:
    ids = dict(enumerate(TOPIC_DATASET_LABELS))
    got = parse_labels(["fed | central banks", 11], "topic", TOPIC_DATASET_LABELS, ids)
    assert list(got) == [1, 11]


def test_unknown_labels_are_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"'7'.*'sideways'|'sideways'.*'7'"):
        parse_labels([7, "sideways", "bullish"], "sentiment", SENTIMENT_LABELS, SENTIMENT_IDS)


def test_positive_is_no_synonym_for_topics() -> None:
    with pytest.raises(ValueError, match="positive"):
        parse_labels(["positive"], "topic", TOPIC_DATASET_LABELS, {})


def test_fixture_csvs_with_ids_and_with_names_load_to_the_same_labels() -> None:
    by_id = load_split(FIXTURES / "sentiment" / "valid.csv", "sentiment", SENTIMENT_LABELS)
    by_name = load_split(FIXTURES / "sentiment_names.csv", "sentiment", SENTIMENT_LABELS)
    assert list(by_name["label"]) == list(by_id["label"][: len(by_name)])
    assert set(by_id.columns) == {"text", "raw", "label", "target", "raw_target", "n_entities"}


def test_topic_label_names_come_from_labels_json_in_id_order() -> None:
    assert model_label_names("topic", FIXTURES / "topic") == TOPIC_DATASET_LABELS
    assert model_label_names("sentiment", FIXTURES / "sentiment") == SENTIMENT_LABELS


def test_resolve_duplicates_majority_vote_and_ties_dropped() -> None:
    frame = pd.DataFrame(
        {
            "text": ["a", "a", "a", "b", "b", "c", ""],
            "label": [1, 1, 0, 0, 1, 2, 0],
            "target": [""] * 7,
            "n_entities": [0] * 7,
        }
    )
    resolved = resolve_duplicates(frame)
    assert dict(zip(resolved["text"], resolved["label"], strict=True)) == {"a": 1, "c": 2}


def test_dedup_drops_train_overlap_and_repeats() -> None:
    train = load_split(FIXTURES / "topic" / "train.csv", "topic", TOPIC_DATASET_LABELS)
    valid = load_split(FIXTURES / "topic" / "valid.csv", "topic", TOPIC_DATASET_LABELS)
    deduped = dedup_against(valid, train["text"])
    # two valid rows are in train (other link), one repeats within valid after unescaping
    assert len(valid) - len(deduped) == 3
    assert not set(deduped["text"]) & set(train["text"])
    assert deduped["text"].is_unique


def test_holdout_is_stratified_disjoint_and_seeded() -> None:
    frame = pd.DataFrame(
        {
            "text": [f"t{i}" for i in range(100)],
            "label": [i % 4 for i in range(100)],
            "target": [""] * 100,
        }
    )
    train, dev = holdout_split(frame, 0.2, seed=1)
    assert len(dev) == 20 and sorted(dev["label"].value_counts()) == [5, 5, 5, 5]
    assert not set(train["text"]) & set(dev["text"])
    assert list(holdout_split(frame, 0.2, seed=1)[1]["text"]) == list(dev["text"])


@needs_shared_data()
def test_shared_datasets_parse_with_published_counts() -> None:
    topic = SHARED_DATA / "twitter_fin_topic"
    names = model_label_names("topic", topic)
    assert names == TOPIC_DATASET_LABELS
    assert len(load_split(topic / "valid.csv", "topic", names)) == 4117
    sentiment = load_split(
        SHARED_DATA / "twitter_fin_sentiment" / "train.csv", "sentiment", SENTIMENT_LABELS
    )
    counts = sentiment["label"].value_counts()
    assert [counts[SENTIMENT_LABELS.index(n)] for n in ("bearish", "bullish", "neutral")] == [
        1442,
        1923,
        6178,
    ]


def test_an_entity_set_keeps_targets_and_entity_counts() -> None:
    frame = load_split(FIXTURES / "news" / "train.csv", "sentiment", SENTIMENT_LABELS)
    assert has_targets(frame)
    assert set(frame["n_entities"]) == {1, 2}
    multi = frame[frame["n_entities"] == 2]
    # a two-entity headline appears once per entity, each with its own label
    assert multi.groupby("text")["target"].nunique().eq(2).all()
    plain = load_split(FIXTURES / "sentiment" / "train.csv", "sentiment", SENTIMENT_LABELS)
    assert not has_targets(plain) and set(plain["n_entities"]) == {0}


def test_duplicates_are_resolved_per_text_and_target() -> None:
    frame = pd.DataFrame(
        {
            "text": ["A up, B down"] * 3 + ["A up, B down"],
            "target": ["A", "A", "A", "B"],
            "label": [2, 2, 0, 0],
            "n_entities": [2, 2, 2, 2],
        }
    )
    out = resolve_duplicates(frame)
    assert sorted(zip(out["target"], out["label"], strict=True)) == [("A", 2), ("B", 0)]


def test_entity_holdout_keeps_each_headline_on_one_side() -> None:
    frame = resolve_duplicates(
        load_split(FIXTURES / "news" / "train.csv", "sentiment", SENTIMENT_LABELS)
    )
    train, held = holdout_split(frame, 0.25, seed=3)
    assert set(train["text"]).isdisjoint(held["text"])
    assert len(train) + len(held) == len(frame) and len(held) > 0
    headlines = headline_rows(train)
    assert (headlines["target"] == "").all() and (headlines["n_entities"] == 1).all()
    assert headlines["text"].is_unique


_ENTITY = st.sampled_from(["Acme", "Globex", "Initech", "Umbrella", "Hooli", "BA"])


@given(
    rows=st.lists(
        st.tuples(
            _ENTITY, st.sampled_from(["jumps", "slips", "holds", "BA falls"]), st.integers(0, 2)
        ),
        max_size=24,
    ),
    others=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_contrast_pairs_join_single_entity_headlines_each_label_towards_its_own(
    rows: list[tuple[str, str, int]], others: int, seed: int
) -> None:
    singles = pd.DataFrame(
        {
            "text": [f"{entity} {verb} #{i}" for i, (entity, verb, _) in enumerate(rows)],
            "target": [entity for entity, _, _ in rows],
            "label": [label for _, _, label in rows],
            "n_entities": 1,
        }
    )
    multi = pd.DataFrame(
        {"text": ["Acme up, Globex down"] * others, "target": "Acme", "label": 0, "n_entities": 2}
    )
    pairs = contrast_pairs(pd.concat([singles, multi], ignore_index=True), seed)
    source = {
        (t, g): label
        for t, g, label in zip(singles["text"], singles["target"], singles["label"], strict=True)
    }

    assert (pairs["n_entities"] == 2).all() and len(pairs) % 2 == 0
    used: list[str] = []
    for text, first, second in zip(
        pairs["text"][0::2],
        pairs.iloc[0::2].itertuples(),
        pairs.iloc[1::2].itertuples(),
        strict=True,
    ):
        assert first.text == second.text == text
        a, b = text.split("; ")
        used += [a, b]
        assert (
            source[(a, first.target)] == first.label and source[(b, second.target)] == second.label
        )
        assert mark_mentions(b, first.target) == b and mark_mentions(a, second.target) == a
    assert len(used) == len(set(used))
    assert pairs.equals(contrast_pairs(pd.concat([singles, multi], ignore_index=True), seed))


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("Acme jumps", "Acme"), ("Globex slips", "Globex")], 2),
        ([("Acme jumps", "Acme"), ("Globex slips after Acme deal", "Globex")], 0),
        ([("Acme jumps", "Acme"), ("Globex slips on $ACME news", "Globex")], 0),
        ([("Acme jumps", "Acme"), ("Globex slips, Acmeco rises", "Globex")], 2),
        ([("Acme jumps", "Acme"), ("Globex slips", "Globex"), ("Hooli holds", "Hooli")], 2),
    ],
    ids=["distinct", "named", "cashtag", "inside-a-word", "odd-one-left"],
)
def test_a_pair_is_skipped_when_one_entity_is_mentioned_in_the_other_headline(
    rows: list[tuple[str, str]], expected: int
) -> None:
    frame = pd.DataFrame(
        {"text": [t for t, _ in rows], "target": [g for _, g in rows], "label": 1, "n_entities": 1}
    )
    assert len(contrast_pairs(frame, seed=0)) == expected
