"""Window arithmetic: table-driven boundaries and property tests of the aggregation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.durations import format_duration, parse_duration
from monitor.windows import (
    ALL_KEY,
    Observation,
    WindowKey,
    aggregate,
    window_start,
)

T = datetime(2026, 11, 28, 10, 7, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ts", "size", "start"),
    [
        (T, timedelta(minutes=1), datetime(2026, 11, 28, 10, 7, tzinfo=UTC)),
        (T, timedelta(minutes=5), datetime(2026, 11, 28, 10, 5, tzinfo=UTC)),
        (T, timedelta(hours=1), datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
        (
            datetime(2026, 11, 28, 10, 5, tzinfo=UTC),
            timedelta(minutes=5),
            datetime(2026, 11, 28, 10, 5, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 28, 10, 4, 59, 999999, tzinfo=UTC),
            timedelta(minutes=5),
            datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
        ),
        (
            datetime(
                2026, 11, 28, 11, 7, tzinfo=__import__("datetime").timezone(timedelta(hours=1))
            ),
            timedelta(hours=1),
            datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
        ),
    ],
)
def test_window_start(ts: datetime, size: timedelta, start: datetime) -> None:
    assert window_start(ts, size) == start


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_start(datetime(2026, 1, 1), timedelta(minutes=1))


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from([1, 60, 300, 900, 3600, 86400]),
)
def test_timestamp_lies_in_its_half_open_window(ts: datetime, seconds: int) -> None:
    size = timedelta(seconds=seconds)
    start = window_start(ts, size)
    assert start <= ts < start + size


def keys_for(obs: Observation, sizes: list[timedelta]) -> list[WindowKey]:
    """Every window key that `obs` counts in, written out as the specification says."""
    pairs = [("all", ALL_KEY), ("topic", obs.topic), *(("ticker", t) for t in obs.tickers)]
    return [
        WindowKey(int(size.total_seconds()), window_start(obs.published_at, size), dim, key)
        for size in sizes
        for dim, key in pairs
    ]


def counted_as(obs: Observation, dimension: str, key: str) -> tuple[str, float]:
    """The (sentiment, score) that `obs` adds to its window of `dimension`/`key`: its own,
    except in a ticker window whose ticker it judged separately."""
    if dimension == "ticker":
        for ticker, sentiment, score in obs.towards:
            if ticker == key:
                return sentiment, score
    return obs.sentiment, obs.score


def test_keys_cover_all_topic_and_each_ticker() -> None:
    obs = Observation(T, "Earnings", ("AAPL", "MSFT"), "bearish", -0.8)
    keys = keys_for(obs, [timedelta(minutes=5)])
    assert {(k.dimension, k.key) for k in keys} == {
        ("all", ALL_KEY),
        ("topic", "Earnings"),
        ("ticker", "AAPL"),
        ("ticker", "MSFT"),
    }


observations = st.lists(
    st.builds(
        Observation,
        published_at=st.datetimes(
            min_value=datetime(2026, 1, 1), max_value=datetime(2026, 1, 2), timezones=st.just(UTC)
        ),
        topic=st.sampled_from(["Earnings", "Macro"]),
        tickers=st.lists(st.sampled_from(["AAPL", "BA"]), unique=True, max_size=2).map(tuple),
        sentiment=st.sampled_from(["bearish", "neutral", "bullish"]),
        score=st.floats(min_value=-1, max_value=1),
        towards=st.lists(
            st.tuples(
                st.sampled_from(["AAPL", "BA"]),
                st.sampled_from(["bearish", "neutral", "bullish"]),
                st.floats(min_value=-1, max_value=1),
            ),
            unique_by=lambda t: t[0],
            max_size=2,
        ).map(tuple),
    ),
    max_size=40,
)


@given(observations)
def test_all_dimension_counts_every_item_once_per_size(items: list[Observation]) -> None:
    sizes = [timedelta(minutes=1), timedelta(hours=1)]
    deltas = aggregate(items, sizes)
    for size in sizes:
        total = sum(
            c.n_total
            for k, c in deltas.items()
            if k.dimension == "all" and k.window_seconds == size.total_seconds()
        )
        assert total == len(items)
        bearish = sum(
            c.n_bearish
            for k, c in deltas.items()
            if k.dimension == "topic" and k.window_seconds == size.total_seconds()
        )
        assert bearish == sum(1 for o in items if o.sentiment == "bearish")


@given(observations)
def test_aggregate_counts_each_item_in_each_of_its_keys(items: list[Observation]) -> None:
    """The summing shortcut agrees with counting item by item, key by key."""
    sizes = [timedelta(minutes=1), timedelta(hours=1)]
    expected: dict[WindowKey, list[float]] = {}
    for obs in items:
        for key in keys_for(obs, sizes):
            sentiment, score = counted_as(obs, key.dimension, key.key)
            counts = expected.setdefault(key, [0, 0, 0, 0.0])
            counts[["bearish", "neutral", "bullish"].index(sentiment)] += 1
            counts[3] += score
    deltas = aggregate(items, sizes)
    assert deltas.keys() == expected.keys()
    for key, (bearish, neutral, bullish, score) in expected.items():
        got = deltas[key]
        assert (got.n_bearish, got.n_neutral, got.n_bullish) == (bearish, neutral, bullish)
        assert got.score_sum == pytest.approx(score, abs=1e-9)


def test_a_ticker_counts_the_sentiment_towards_it() -> None:
    """ "Acme gains, Widget slips": Acme's windows count bullish, Widget's bearish, and the
    item's own (neutral) counts in the overall and topic windows and for other tickers."""
    obs = Observation(
        T,
        "Stock Movement",
        ("ACME", "WDGT", "OTHR"),
        "neutral",
        0.1,
        towards=(("ACME", "bullish", 0.9), ("WDGT", "bearish", -0.7)),
    )
    deltas = aggregate([obs], [timedelta(minutes=5)])
    by_key = {(k.dimension, k.key): c for k, c in deltas.items()}
    assert (by_key["ticker", "ACME"].n_bullish, by_key["ticker", "ACME"].score_sum) == (1, 0.9)
    assert (by_key["ticker", "WDGT"].n_bearish, by_key["ticker", "WDGT"].score_sum) == (1, -0.7)
    for own in (("ticker", "OTHR"), ("all", ALL_KEY), ("topic", "Stock Movement")):
        assert (by_key[own].n_neutral, by_key[own].score_sum) == (1, 0.1)


def test_an_unknown_sentiment_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sentiment label 'angry'"):
        aggregate([Observation(T, "Earnings", (), "angry", 0.0)], [timedelta(minutes=5)])


@given(observations, st.integers(min_value=0, max_value=40))
def test_aggregation_is_additive(items: list[Observation], cut: int) -> None:
    """Two batches stored one after the other give the same windows as one batch."""
    sizes = [timedelta(minutes=5)]
    whole = aggregate(items, sizes)
    first, second = aggregate(items[:cut], sizes), aggregate(items[cut:], sizes)
    for key, counts in whole.items():
        parts = [p[key] for p in (first, second) if key in p]
        assert counts.n_total == sum(p.n_total for p in parts)
        assert counts.score_sum == pytest.approx(sum(p.score_sum for p in parts), abs=1e-9)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        (90, timedelta(seconds=90)),
    ],
)
def test_parse_duration(text: object, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("bad", ["", "5 parsecs", "m5", "1.5h", True, None])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "label"), [(60, "1m"), (3600, "1h"), (90, "90s"), (86400, "1d")]
)
def test_format_duration(seconds: int, label: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == label
