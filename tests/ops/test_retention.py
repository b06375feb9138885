"""Retention deletes only what is older than its age, on both backends, and is idempotent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from monitor.contract import IngestPolicy
from monitor.db.models import NewsItemRow, NewsItemTickerRow, TrendWindowRow
from monitor.db.store import NewsStore
from monitor.pipeline_types import RawMessage
from monitor.processing import BatchProcessor
from monitor.retention import RetentionResult, apply_retention
from tests.doubles import KeywordClassifier

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SIZES = [timedelta(minutes=5), timedelta(hours=1)]
AGES = {
    "ancient": timedelta(days=100),
    "old": timedelta(days=31),
    "at-cutoff": timedelta(days=30),  # exactly the age: kept, only older is deleted
    "recent": timedelta(days=29),
    "fresh": timedelta(hours=1),
}


def seed(engine: Engine) -> None:
    messages = [
        RawMessage(
            json.dumps(
                {"id": name, "published_at": (NOW - age).isoformat(), "headline": "$AAPL jumps"}
            ).encode()
        )
        for name, age in AGES.items()
    ]
    processor = BatchProcessor(
        KeywordClassifier(), NewsStore(engine, SIZES), IngestPolicy(), clock=lambda: NOW
    )
    processor.process(messages)


def retain(engine: Engine) -> RetentionResult:
    return apply_retention(
        engine,
        NOW,
        items_max_age=timedelta(days=30),
        windows_max_age=timedelta(days=60),
        window_sizes=SIZES,
        chunk=1,  # one item per transaction: the chunk loop runs to the end
    )


def test_retention_deletes_only_old_rows(engine: Engine) -> None:
    seed(engine)
    assert retain(engine) == RetentionResult(news_items=2, trend_windows=2 * 3)

    with engine.connect() as conn:
        items = set(conn.scalars(select(NewsItemRow.id)))
        tickers = set(conn.scalars(select(NewsItemTickerRow.item_id)))
        oldest_window = conn.scalar(select(func.min(TrendWindowRow.window_start)))
        windows = conn.scalar(select(func.count()).select_from(TrendWindowRow))
    assert items == tickers == {"at-cutoff", "recent", "fresh"}
    # The 31-day-old item's windows stay: windows are kept for 60 days.
    assert oldest_window == (NOW - AGES["old"]).replace(minute=0)
    assert windows == 4 * len(SIZES) * 3  # 4 items left in windows x sizes x (all, topic, ticker)


def test_retention_is_idempotent(engine: Engine) -> None:
    seed(engine)
    retain(engine)
    again = retain(engine)
    assert again == RetentionResult() and not again
