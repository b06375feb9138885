"""Storing batches: exactly-once counting under redelivery, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from monitor.contract import IngestPolicy, NewsItem
from monitor.db.models import NewsItemRow, NewsItemTickerRow, TrendWindowRow
from monitor.db.store import NewsStore
from monitor.model.interface import ModelInput
from monitor.pipeline_types import ClassifiedItem, Origin, RawMessage
from monitor.processing import BatchProcessor
from tests.doubles import KeywordClassifier

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SIZES = [timedelta(minutes=5), timedelta(hours=1)]


def message(item_id: str, headline: str, minute: int = 0, **extra: object) -> RawMessage:
    doc = {
        "id": item_id,
        "published_at": (NOW - timedelta(minutes=60 - minute)).isoformat(),
        "headline": headline,
        **extra,
    }
    return RawMessage(json.dumps(doc).encode(), Origin("news.raw", 0, minute))


def processor(engine: Engine, classifier: KeywordClassifier) -> BatchProcessor:
    return BatchProcessor(classifier, NewsStore(engine, SIZES), IngestPolicy(), clock=lambda: NOW)


def window_totals(
    engine: Engine, dimension: str = "all"
) -> dict[tuple[int, datetime], tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                TrendWindowRow.window_seconds,
                TrendWindowRow.window_start,
                TrendWindowRow.n_total,
                TrendWindowRow.n_bearish,
            ).where(TrendWindowRow.dimension == dimension)
        ).all()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model)) or 0


def test_batch_is_stored_with_windows(engine: Engine, classifier: KeywordClassifier) -> None:
    batch = [
        message("a", "$AAPL shares plunge after probe", 1),
        message("b", "$AAPL beats estimates", 2),
        message("c", "Fed holds rates", 7),
        RawMessage(b"{broken", Origin("news.raw", 0, 99)),
    ]
    outcome = processor(engine, classifier).process(batch)
    assert [i.item.id for i in outcome.stored.inserted] == ["a", "b", "c"]
    assert len(outcome.dead_letters) == 1 and outcome.dead_letters[0].raw == b"{broken"
    assert count(engine, NewsItemRow) == 3
    assert count(engine, NewsItemTickerRow) == 2
    totals = window_totals(engine)
    hour = (3600, datetime(2026, 11, 28, 11, 0, tzinfo=UTC))
    assert totals[hour] == (3, 1)
    assert totals[(300, datetime(2026, 11, 28, 11, 0, tzinfo=UTC))] == (2, 1)
    assert totals[(300, datetime(2026, 11, 28, 11, 5, tzinfo=UTC))] == (1, 0)
    with engine.connect() as conn:
        mean = conn.scalar(
            select(TrendWindowRow.mean_score).where(
                TrendWindowRow.window_seconds == 3600, TrendWindowRow.dimension == "all"
            )
        )
    assert mean == pytest.approx((-0.88 + 0.88 + 0.0) / 3)


def test_each_ticker_counts_the_sentiment_towards_it(
    engine: Engine, classifier: KeywordClassifier
) -> None:
    """A two-ticker item is classified once more per located ticker, in the same classifier
    call; each ticker's windows, rows and published document carry its own sentiment."""
    proc = processor(engine, classifier)
    outcome = proc.process(
        [
            message("a", "$ACME jumps, $WDGT plunges", 1),
            message("b", "Planemakers diverge", 2, tickers=["BA", "AIR"], body="$BA slides"),
            message("c", "Boeing tumbles while Airbus wins record order", 3,
                    entities={"BA": ["Boeing"], "AIR": ["Airbus"]}),
        ]
    )  # fmt: skip
    assert classifier.batch_sizes == [3 + 2 + 1 + 2]
    with engine.connect() as conn:
        rows = {
            (r.item_id, r.ticker): (r.sentiment, r.target)
            for r in conn.execute(select(NewsItemTickerRow)).all()
        }
    assert rows == {
        ("a", "ACME"): ("bullish", "ACME"),
        ("a", "WDGT"): ("bearish", "WDGT"),
        ("b", "BA"): ("neutral", "BA"),  # located in the body; the double reads headlines
        ("b", "AIR"): ("neutral", None),
        ("c", "BA"): ("bearish", "Boeing"),
        ("c", "AIR"): ("bullish", "Airbus"),
    }
    with engine.connect() as conn:
        hourly = {
            r.key: (r.n_bearish, r.n_neutral, r.n_bullish)
            for r in conn.execute(
                select(TrendWindowRow).where(
                    TrendWindowRow.dimension == "ticker", TrendWindowRow.window_seconds == 3600
                )
            ).all()
        }
    assert hourly == {"ACME": (0, 0, 1), "WDGT": (1, 0, 0), "BA": (1, 1, 0), "AIR": (0, 1, 1)}
    published = json.loads(outcome.classified[0].to_json())
    assert published["sentiment"] == "bearish"  # the headline as a whole
    assert published["ticker_sentiment"]["ACME"] == {
        "sentiment": "bullish",
        "sentiment_score": pytest.approx(0.88),
        "target": "ACME",
    }


def test_redelivery_is_not_double_counted(engine: Engine, classifier: KeywordClassifier) -> None:
    proc = processor(engine, classifier)
    batch = [message(f"id-{i}", f"$BA tumbles {i}", i) for i in range(10)]
    proc.process(batch)
    before = window_totals(engine, "ticker")
    again = proc.process([*batch[3:], message("id-new", "$BA slides", 20)])
    assert [i.item.id for i in again.stored.inserted] == ["id-new"]
    assert len(again.stored.duplicates) == 7 and not again.stored.conflicts
    after = window_totals(engine, "ticker")
    assert sum(t for t, _ in after.values()) == sum(t for t, _ in before.values()) + 2  # 5m and 1h
    assert count(engine, NewsItemRow) == 11


def test_same_id_twice_in_one_batch_counts_once(
    engine: Engine, classifier: KeywordClassifier
) -> None:
    outcome = processor(engine, classifier).process([message("x", "one"), message("x", "one")])
    assert outcome.repeated_in_batch == 1
    assert count(engine, NewsItemRow) == 1
    assert sum(t for t, _ in window_totals(engine).values()) == 2


def test_conflicting_duplicate_keeps_first_write(
    engine: Engine, classifier: KeywordClassifier
) -> None:
    proc = processor(engine, classifier)
    proc.process([message("dup", "first version")])
    outcome = proc.process([message("dup", "second version")])
    assert [c.item.id for c in outcome.stored.conflicts] == ["dup"]
    with engine.connect() as conn:
        assert conn.scalar(select(NewsItemRow.headline)) == "first version"


def test_late_item_updates_its_older_window(engine: Engine, classifier: KeywordClassifier) -> None:
    proc = processor(engine, classifier)
    proc.process([message("new", "$AAPL beats", 50)])
    proc.process([message("late", "$AAPL plunge", 1)])
    totals = window_totals(engine)
    assert totals[(300, datetime(2026, 11, 28, 11, 0, tzinfo=UTC))] == (1, 1)
    assert totals[(3600, datetime(2026, 11, 28, 11, 0, tzinfo=UTC))] == (2, 1)


def test_timestamps_come_back_utc_aware(engine: Engine, classifier: KeywordClassifier) -> None:
    processor(engine, classifier).process([message("tz", "hello", 5)])
    with engine.connect() as conn:
        published = conn.scalar(select(NewsItemRow.published_at))
    assert published is not None and published.tzinfo is not None
    assert published == NOW - timedelta(minutes=55)


class FailsOn(KeywordClassifier):
    """A classifier with a bug on one input: it must not stall or lose the batch."""

    def classify(self, inputs):  # type: ignore[no-untyped-def]
        if any("poison" in i.headline for i in inputs):
            raise RuntimeError("model bug")
        return super().classify(inputs)


def test_a_failing_item_is_isolated_and_dead_lettered(engine: Engine) -> None:
    batch = [message(f"ok-{i}", f"$AAPL beats {i}", i) for i in range(6)]
    batch.insert(3, message("bad", "poison headline", 3))
    outcome = processor(engine, FailsOn()).process(batch)
    assert sorted(i.item.id for i in outcome.stored.inserted) == [f"ok-{i}" for i in range(6)]
    assert [d.reason for d in outcome.dead_letters] == [
        "processing failed: RuntimeError: model bug"
    ]
    assert outcome.dead_letters[0].raw == batch[3].value
    assert sum(t for t, _ in window_totals(engine).values()) == 12  # 6 items x (5m + 1h)


class NaNOn(KeywordClassifier):
    """A broken model: its verdict on one input has a NaN score."""

    def classify(self, inputs):  # type: ignore[no-untyped-def]
        verdicts = super().classify(inputs)
        return [
            replace(v, sentiment_score=math.nan) if "poison" in i.headline else v
            for i, v in zip(inputs, verdicts, strict=True)
        ]


def test_a_non_finite_probability_is_dead_lettered_not_retried(engine: Engine) -> None:
    # Stored as NULL it would break a NOT NULL column: a database error, retried forever.
    batch = [message("ok-1", "$AAPL beats", 1), message("bad", "poison", 2)]
    batch.append(message("ok-2", "$AAPL rises", 3))
    outcome = processor(engine, NaNOn()).process(batch)
    assert sorted(i.item.id for i in outcome.stored.inserted) == ["ok-1", "ok-2"]
    [letter] = outcome.dead_letters
    assert letter.raw == batch[1].value
    assert letter.reason.startswith("processing failed: ValueError: non-finite classifier output")


def test_extra_fields_keep_integers_beyond_64_bits(
    engine: Engine, classifier: KeywordClassifier
) -> None:
    outcome = processor(engine, classifier).process([message("big", "hello", 5, shares=2**70)])
    assert [i.item.id for i in outcome.stored.inserted] == ["big"]
    with engine.connect() as conn:
        assert conn.scalar(select(NewsItemRow.extra)) == {"shares": 2**70}


def test_a_naive_datetime_is_refused(engine: Engine, classifier: KeywordClassifier) -> None:
    naive = NewsItem("naive", datetime(2026, 11, 28, 11, 0), "hello")
    [verdict] = classifier.classify([ModelInput("hello")])
    store = NewsStore(engine, SIZES)
    with pytest.raises(ValueError, match="naive datetime"):
        store.store([ClassifiedItem(naive, verdict)], now=NOW)
    with pytest.raises(ValueError, match="naive datetime"):
        store.store(
            [ClassifiedItem(replace(naive, published_at=NOW), verdict)],
            now=NOW.replace(tzinfo=None),
        )
    assert count(engine, NewsItemRow) == 0


class StoreFailsOn(NewsStore):
    """A store with a (non-database) bug on one item: the item is isolated the same way."""

    def store(self, items, *, now=None):  # type: ignore[no-untyped-def]
        if any(i.item.id == "bad" for i in items):
            raise ValueError("store bug")
        return super().store(items, now=now)


def test_an_item_the_store_fails_on_is_isolated_and_dead_lettered(
    engine: Engine, classifier: KeywordClassifier
) -> None:
    proc = BatchProcessor(
        classifier, StoreFailsOn(engine, SIZES), IngestPolicy(), clock=lambda: NOW
    )
    batch = [message(f"ok-{i}", f"$AAPL beats {i}", i) for i in range(5)]
    batch.insert(2, message("bad", "fine headline", 2))
    outcome = proc.process(batch)
    assert sorted(i.item.id for i in outcome.stored.inserted) == [f"ok-{i}" for i in range(5)]
    assert [(d.raw, d.reason) for d in outcome.dead_letters] == [
        (batch[2].value, "processing failed: ValueError: store bug")
    ]
    assert sum(t for t, _ in window_totals(engine).values()) == 10


def test_an_id_repeated_across_isolated_halves_is_still_one_repeat(engine: Engine) -> None:
    batch = [message("same", "$AAPL beats", 1), message("bad", "poison", 2)]
    batch += [message("same", "$AAPL beats", 1), message("other", "$AAPL rises", 3)]
    outcome = processor(engine, FailsOn()).process(batch)
    assert sorted(i.item.id for i in outcome.stored.inserted) == ["other", "same"]
    assert outcome.repeated_in_batch == 1 and len(outcome.dead_letters) == 1
    assert count(engine, NewsItemRow) == 2


class StoreDownOnce(NewsStore):
    """The database fails the first attempt: nothing stored, the caller retries."""

    failures = 1

    def store(self, items, *, now=None):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return super().store(items, now=now)


def test_a_classified_batch_can_be_stored_again_after_a_database_error(
    engine: Engine, classifier: KeywordClassifier
) -> None:
    proc = BatchProcessor(
        classifier, StoreDownOnce(engine, SIZES), IngestPolicy(), clock=lambda: NOW
    )
    messages = [message("a", "$AAPL plunge", 1), RawMessage(b"not json"), message("b", "Up", 2)]
    classified = proc.classify(messages)
    with pytest.raises(OperationalError):
        proc.store(classified)
    outcome = proc.store(classified)
    assert sorted(i.item.id for i in outcome.stored.inserted) == ["a", "b"]
    assert len(outcome.dead_letters) == 1  # once, not once per attempt
    assert sum(t for t, _ in window_totals(engine).values()) == 4
