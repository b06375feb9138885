"""Locating the tickers of a multi-ticker item in its text, and splitting the verdicts of
a batch with targets back to its items: table-driven and property tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.contract import NewsItem
from monitor.model.interface import Classification
from monitor.targets import locate_targets, model_inputs, split_verdicts

T = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def item(
    headline: str,
    tickers: tuple[str, ...],
    entities: dict[str, tuple[str, ...]] | None = None,
    body: str | None = None,
) -> NewsItem:
    return NewsItem("n1", T, headline, body=body, tickers=tickers, entities=entities or {})


@pytest.mark.parametrize(
    ("news", "expected"),
    [
        # one ticker: the item is about it, its own sentiment is used
        (item("$BA slumps", ("BA",)), {}),
        # cashtags
        (item("$BA slumps, $AIR gains", ("BA", "AIR")), {"BA": "BA", "AIR": "AIR"}),
        # names supplied by the message win over the symbol, first name found
        (
            item(
                "Boeing slumps as Airbus wins order",
                ("BA", "AIR"),
                {"BA": ("The Boeing Company", "boeing"), "AIR": ("Airbus",)},
            ),
            {"BA": "boeing", "AIR": "Airbus"},
        ),
        # a name must be a whole word: 'Meta' is not in 'metals'
        (item("metals rally; $AAPL flat", ("META", "AAPL"), {"META": ("Meta",)}), {"AAPL": "AAPL"}),
        # the bare symbol, upper case only, two letters or more
        (item("IBM and MSFT report", ("IBM", "MSFT")), {"IBM": "IBM", "MSFT": "MSFT"}),
        (item("ibm and msft report", ("IBM", "MSFT")), {}),
        (item("F and GM rally", ("F", "GM")), {"GM": "GM"}),
        # found in the body too
        (
            item("Planemakers diverge", ("BA", "AIR"), body="$BA fell while $AIR rose"),
            {"BA": "BA", "AIR": "AIR"},
        ),
    ],
)
def test_locate_targets(news: NewsItem, expected: dict[str, str]) -> None:
    assert locate_targets(news) == expected


def verdict(sentiment: str, score: float) -> Classification:
    return Classification("Stock Movement", 0.9, sentiment, score, {}, "test")


def test_split_verdicts_gives_each_ticker_its_sentiment() -> None:
    news = [
        item("$ACME gains, $WDGT slips", ("ACME", "WDGT", "ELSE")),
        item("Quiet day", ()),
    ]
    inputs, targets = model_inputs(news)
    assert [i.target for i in inputs] == [None, None, "ACME", "WDGT"]
    verdicts = [
        verdict("neutral", 0.0),
        verdict("neutral", 0.1),
        verdict("bullish", 0.8),
        verdict("bearish", -0.6),
    ]
    (own, tickers), (own2, tickers2) = split_verdicts(news, targets, verdicts)
    assert own.sentiment == "neutral" and tickers2 == () and own2.sentiment_score == 0.1
    assert [(t.ticker, t.sentiment, t.score, t.target) for t in tickers] == [
        ("ACME", "bullish", 0.8, "ACME"),
        ("WDGT", "bearish", -0.6, "WDGT"),
        ("ELSE", "neutral", 0.0, None),
    ]


def test_a_model_without_targets_is_never_asked_about_one() -> None:
    news = [item("$ACME gains, $WDGT slips", ("ACME", "WDGT"))]
    inputs, targets = model_inputs(news, with_targets=False)
    assert [i.target for i in inputs] == [None] and targets == [{}]
    ((_, tickers),) = split_verdicts(news, targets, [verdict("bullish", 0.5)])
    assert [(t.sentiment, t.target) for t in tickers] == [("bullish", None)] * 2


def test_split_verdicts_refuses_a_count_mismatch() -> None:
    news = [item("$A1 up, $B2 down", ("A1", "B2"))]
    _, targets = model_inputs(news)
    with pytest.raises(ValueError, match="2 verdicts for 1 items"):
        split_verdicts(news, targets, [verdict("neutral", 0.0)] * 2)


TICKERS = st.sampled_from(["ACME", "WDGT", "BA", "AIR"])


@given(
    st.lists(
        st.tuples(st.lists(TICKERS, unique=True, max_size=4), st.booleans()),
        max_size=12,
    )
)
def test_every_item_gets_one_sentiment_per_ticker_in_order(
    specs: list[tuple[list[str], bool]],
) -> None:
    """Whatever the mix of items, the verdicts split back one-to-one: each item its own
    verdict, each ticker one sentiment, targeted ones from their own model input."""
    news = [
        replace(
            item(" ".join(f"${t}" for t in tickers) if cashtags else "No tags", tuple(tickers)),
            id=f"n{i}",
        )
        for i, (tickers, cashtags) in enumerate(specs)
    ]
    inputs, targets = model_inputs(news)
    verdicts = [verdict("neutral", float(i)) for i in range(len(inputs))]
    out = split_verdicts(news, targets, verdicts)
    assert len(out) == len(news)
    for n, (news_item, (own, tickers)) in enumerate(zip(news, out, strict=True)):
        assert own.sentiment_score == float(n)
        assert [t.ticker for t in tickers] == list(news_item.tickers)
        for t in tickers:
            if t.target is None:
                assert t.score == own.sentiment_score
            else:
                assert inputs[int(t.score)].target == t.target
                assert int(t.score) >= len(news)
