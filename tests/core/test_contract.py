"""The input contract: table-driven cases and a property test that decoding is total."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.contract import IngestPolicy, NewsItem, Rejection, decode_news, extract_cashtags

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def doc(**fields: object) -> bytes:
    base: dict[str, object] = {
        "id": "n1",
        "published_at": "2026-11-28T11:00:00Z",
        "headline": "Hello",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


REJECTED = [
    (b"not json", "invalid JSON"),
    (b"\xff\xfe{}", "invalid UTF-8"),
    (b"[1, 2]", "JSON value is an array, not an object"),
    (b'"text"', "JSON value is a string, not an object"),
    (b"null", "JSON value is null, not an object"),
    (doc(id=...), "missing required field 'id'"),
    (doc(headline=...), "missing required field 'headline' (or 'title')"),
    (doc(published_at=...), "missing required field 'published_at'"),
    (doc(id=42), "field 'id' must be a string, got a number"),
    (doc(id="  "), "field 'id' is empty"),
    (doc(headline=["a"]), "field 'headline' must be a string, got an array"),
    (doc(headline="   \t\n"), "field 'headline' is empty or whitespace"),
    (doc(published_at="yesterday"), "is not an ISO 8601 timestamp"),
    (doc(published_at="2026-11-28T11:00:00"), "has no timezone"),
    (doc(published_at="2030-01-01T00:00:00Z"), "in the future"),
    (doc(published_at="2001-01-01T00:00:00Z"), "older than"),
    (doc(tickers="AAPL"), "field 'tickers' must be a list of strings"),
    (doc(tickers=[1]), "field 'tickers' must be a list of strings"),
    (doc(tickers=["X" * 40]), "invalid ticker"),
    (doc(body=5), "field 'body' must be a string"),
    (doc(entities=["Boeing"]), "field 'entities' must be an object, got an array"),
    (doc(entities={"BA": [1]}), "must map each ticker to a list of names (BA)"),
    (doc(entities={"BA": {"n": "Boeing"}}), "must map each ticker to a list of names"),
    (doc(entities={"": ["x"]}), "field 'entities' holds an invalid ticker"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTED)
def test_rejections_carry_raw_bytes_and_reason(raw: bytes, reason: str) -> None:
    result = decode_news(raw, now=NOW)
    assert isinstance(result, Rejection)
    assert reason in result.reason
    assert result.raw == raw


def test_valid_message_is_normalised() -> None:
    raw = doc(
        title="  $aapl beats; $MSFT flat, $5bn buyback  ",
        headline=...,
        published_at="2026-11-28T12:30:00+01:00",
        tickers=["tsla", "$AAPL"],
        body="More on $NVDA.",
        vendor_field={"x": 1},
    )
    item = decode_news(raw, now=NOW)
    assert isinstance(item, NewsItem)
    assert item.headline == "$aapl beats; $MSFT flat, $5bn buyback"
    assert item.published_at == datetime(2026, 11, 28, 11, 30, tzinfo=UTC)
    assert item.tickers == ("TSLA", "AAPL", "MSFT", "NVDA")
    assert item.extra == {"vendor_field": {"x": 1}}
    assert item.content_hash


@pytest.mark.parametrize(
    ("entities", "tickers", "expected"),
    [
        ({"ba": ["Boeing", " Boeing Co "]}, [], {"BA": ("Boeing", "Boeing Co")}),
        ({"$BA": "Boeing"}, ["BA"], {"BA": ("Boeing",)}),
        ({"BA": ["", "  "], "AIR.PA": ["Airbus", "Airbus"]}, [], {"BA": (), "AIR.PA": ("Airbus",)}),
        (None, ["BA"], {}),
    ],
)
def test_entities_name_tickers_and_are_tickers_too(
    entities: object, tickers: list[str], expected: dict[str, tuple[str, ...]]
) -> None:
    item = decode_news(doc(entities=entities, tickers=tickers), now=NOW)
    assert isinstance(item, NewsItem)
    assert item.entities == expected
    assert set(expected) <= set(item.tickers)
    assert "entities" not in item.extra


def test_long_body_is_truncated_not_rejected() -> None:
    policy = IngestPolicy(max_body_chars=100)
    item = decode_news(doc(body="x" * 5_000_000), now=NOW, policy=policy)
    assert isinstance(item, NewsItem)
    assert item.body is not None and len(item.body) == 100
    assert item.body_truncated


def test_oversized_message_is_rejected_unread() -> None:
    policy = IngestPolicy(max_message_bytes=2048)
    result = decode_news(doc(body="x" * 4096), now=NOW, policy=policy)
    assert isinstance(result, Rejection) and "over the 2048 limit" in result.reason


def test_unicode_oddities_survive_and_nul_is_dropped() -> None:
    headline = "\u200f\u05e9\u05dc\u05d5\u05dd $TEVA 🚀\x00 up"
    item = decode_news(doc(headline=headline, body="a\x00b"), now=NOW)
    assert isinstance(item, NewsItem)
    assert item.headline == "\u200f\u05e9\u05dc\u05d5\u05dd $TEVA 🚀 up"
    assert item.body == "ab"
    assert item.tickers == ("TEVA",)


def test_future_skew_within_policy_is_accepted() -> None:
    at = (NOW + timedelta(minutes=5)).isoformat()
    assert isinstance(decode_news(doc(published_at=at), now=NOW), NewsItem)


def tags(n: int, start: int = 0) -> list[str]:
    """`n` distinct valid tickers."""
    return [f"T{i}" for i in range(start, start + n)]


LIMIT = IngestPolicy(max_tickers=5)
TICKER_LIMIT_CASES = [
    # (what, message, accepted tickers or None when dead-lettered)
    ("at the limit, given", doc(tickers=tags(5)), tuple(tags(5))),
    ("over the limit, given", doc(tickers=tags(6)), None),
    ("repeats count once", doc(tickers=tags(5) * 1000), tuple(tags(5))),
    ("case and $ variants count once", doc(tickers=["t0", "$T0", " T0 "]), ("T0",)),
    ("given plus headline cashtag", doc(tickers=tags(5), headline="$ZZ up"), None),
    ("cashtag repeating a given one", doc(tickers=tags(5), headline="$T0 up"), tuple(tags(5))),
    ("body full of cashtags", doc(body=" ".join(f"${t}" for t in tags(6))), None),
    ("50 000 given tickers", doc(tickers=tags(50_000)), None),
    ("an entity's ticker counts too", doc(tickers=tags(5), entities={"ZZ": ["Zed"]}), None),
    (
        "an entity repeating a given ticker",
        doc(tickers=tags(5), entities={"T1": ["Tee"]}),
        tuple(tags(5)),
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [pytest.param(raw, want, id=what) for what, raw, want in TICKER_LIMIT_CASES],
)
def test_ticker_fan_out_is_bounded(raw: bytes, expected: tuple[str, ...] | None) -> None:
    result = decode_news(raw, now=NOW, policy=LIMIT)
    if expected is None:
        assert isinstance(result, Rejection) and result.raw == raw
        assert "more than 5 distinct tickers" in result.reason
        assert "ingest.max_tickers" in result.reason
    else:
        assert isinstance(result, NewsItem) and result.tickers == expected


def test_default_ticker_limit_keeps_real_news() -> None:
    """A market wrap naming dozens of companies is news; the default must never refuse it."""
    wrap = " ".join(f"${t} moved" for t in tags(60))
    item = decode_news(doc(headline="Movers: " + wrap[:900], body=wrap), now=NOW)
    assert isinstance(item, NewsItem) and len(item.tickers) == 60


@given(
    given_n=st.integers(0, 12),
    cashtag_n=st.integers(0, 12),
    overlap=st.integers(0, 12),
    limit=st.integers(1, 20),
)
def test_an_item_is_refused_exactly_when_its_distinct_tickers_exceed_the_limit(
    given_n: int, cashtag_n: int, overlap: int, limit: int
) -> None:
    given_tickers = tags(given_n)
    # cashtags start inside the given ones by `overlap`, so some repeat them
    cashtags = tags(cashtag_n, start=max(given_n - overlap, 0))
    raw = doc(tickers=given_tickers, body=" ".join(f"${t}" for t in cashtags))
    distinct = set(given_tickers) | set(cashtags)
    result = decode_news(raw, now=NOW, policy=IngestPolicy(max_tickers=limit))
    if len(distinct) > limit:
        assert isinstance(result, Rejection) and "ingest.max_tickers" in result.reason
    else:
        assert isinstance(result, NewsItem) and set(result.tickers) == distinct


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("$AAPL and $msft", ["AAPL", "MSFT"]),
        ("costs $5bn, $5", []),
        ("$BRK.B rises", ["BRK.B"]),
        ("US$100 and a$b", []),
        ("($TSLA)", ["TSLA"]),
    ],
)
def test_cashtags(text: str, tags: list[str]) -> None:
    assert extract_cashtags(text) == tags


@given(st.binary(max_size=512))
def test_decoder_is_total_for_any_bytes(raw: bytes) -> None:
    result = decode_news(raw, now=NOW)
    assert isinstance(result, NewsItem | Rejection)
    if isinstance(result, Rejection):
        assert result.raw == raw and "internal decoder error" not in result.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": json_values,
            "published_at": json_values | st.just("2026-11-28T10:00:00Z"),
            "headline": json_values,
            "title": json_values,
            "body": json_values,
            "tickers": json_values | st.lists(st.text(max_size=12), max_size=3),
            "source": json_values,
        },
    )
)
def test_decoder_never_errors_on_any_json_object(document: dict[str, object]) -> None:
    raw = json.dumps(document).encode()
    result = decode_news(raw, now=NOW)
    assert isinstance(result, NewsItem | Rejection)
    if isinstance(result, Rejection):
        assert "internal decoder error" not in result.reason
