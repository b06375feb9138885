"""Feed entries to messages, ids and backoff (pure): tables and properties."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.backoff import next_delay
from ingest.fetch import retry_after
from ingest.mapping import Entry, FeedContext, Skipped, item_id, plain_text, to_message
from monitor.contract import NewsItem, decode_news

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FEED = FeedContext("wire", ("ACME",))


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (Entry(guid="g1", link="l1"), Entry(guid="g1", link="l2", title="edited"), True),
        (Entry(guid="g1"), Entry(guid="g2"), False),
        (Entry(link="l1", title="x"), Entry(link="l1", title="edited"), True),
        (Entry(title="x", published=NOW), Entry(title="x", published=NOW), True),
        (Entry(title="x", published=NOW), Entry(title="x", published=NOW + timedelta(1)), False),
        (Entry(title="<b>x</b>"), Entry(title="x"), True),
        (Entry(guid="  g1 "), Entry(guid="g1"), True),
    ],
)
def test_item_id_identity(a: Entry, b: Entry, same: bool) -> None:
    assert (item_id("wire", a) == item_id("wire", b)) == same
    assert item_id("wire", a) != item_id("other", a)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<script>alert(1)</script>Acme <b>beats</b>", "Acme beats"),
        ("Globex &amp;amp; Initech", "Globex &amp; Initech"),
        ("AT&amp;T <style>p{}</style>rises", "AT&T rises"),
        ("line<br>break\n\t here", "line break here"),
        ("a < b and c > d", "a < b and c > d"),
        ("NUL\x00inside", "NULinside"),
    ],
)
def test_plain_text(html: str, text: str) -> None:
    assert plain_text(html) == text


@pytest.mark.parametrize(
    ("published", "expected", "flag"),
    [
        (NOW - timedelta(hours=1), NOW - timedelta(hours=1), None),
        (None, NOW, "first_seen"),
        (NOW + timedelta(days=3), NOW, "first_seen_future_date"),
        (datetime(1970, 1, 1, tzinfo=UTC), NOW, "first_seen_implausible_date"),
        (datetime(2026, 12, 1, 9, 0), datetime(2026, 12, 1, 9, 0, tzinfo=UTC), None),
    ],
)
def test_published_at(published: datetime | None, expected: datetime, flag: str | None) -> None:
    message = to_message(FEED, Entry(guid="g", title="t", published=published), NOW)
    assert isinstance(message, dict)
    assert message["published_at"] == expected.isoformat()
    assert message.get("published_at_from") == flag


def test_old_and_untitled_entries_are_skipped_with_a_reason() -> None:
    old = Entry(guid="g", title="t", published=NOW - timedelta(days=400))
    assert to_message(FEED, old, NOW) == Skipped("too_old")
    assert to_message(FEED, Entry(guid="g", title=" <b></b> "), NOW) == Skipped("no_title")


def test_tickers_are_the_feeds_and_the_cashtags() -> None:
    entry = Entry(guid="g", title="$MEGA jumps", summary="after $acme deal, $5bn")
    message = to_message(FEED, entry, NOW)
    assert isinstance(message, dict) and message["tickers"] == ["ACME", "MEGA"]


entries = st.builds(
    Entry,
    guid=st.none() | st.text(max_size=40),
    link=st.none() | st.text(max_size=40),
    title=st.none() | st.text(max_size=200),
    summary=st.none() | st.text(max_size=400),
    published=st.none() | st.datetimes(timezones=st.just(UTC)),
    lang=st.none() | st.text(max_size=5),
)


@given(entries)
def test_every_message_is_accepted_by_the_worker(entry: Entry) -> None:
    """Whatever a feed holds, ingest publishes only what the worker's decoder accepts."""
    import orjson

    message = to_message(FEED, entry, NOW)
    if isinstance(message, Skipped):
        return
    decoded = decode_news(orjson.dumps(message), now=NOW)
    assert isinstance(decoded, NewsItem), decoded
    assert "<script" not in decoded.headline.lower() or "<script" in (entry.title or "").lower()


@given(st.integers(0, 60), st.integers(1, 3600), st.integers(1, 86400))
def test_backoff_stays_between_the_period_and_the_cap(failures: int, every: int, cap: int) -> None:
    period, ceiling = timedelta(seconds=every), timedelta(seconds=cap)
    delay = next_delay(period, failures, ceiling, rng=random.Random(failures))
    assert period <= delay <= max(period, ceiling)
    if failures == 0:
        assert delay == period


def test_retry_after_is_a_floor_up_to_the_cap() -> None:
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    assert next_delay(minute, 1, hour, timedelta(minutes=30)) >= timedelta(minutes=30)
    assert next_delay(minute, 1, hour, timedelta(days=3)) == hour


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120), ("Tue, 01 Dec 2026 12:02:00 GMT", 120), ("soon", None), (None, None)],
)
def test_retry_after_header(header: str | None, seconds: int | None) -> None:
    headers = {"Retry-After": header} if header else {}
    got = retry_after(headers, now=NOW)
    assert got == (timedelta(seconds=seconds) if seconds is not None else None)
