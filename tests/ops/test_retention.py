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


def test_story_bands_older_than_their_age_are_deleted_in_chunks(engine: Engine) -> None:
    from monitor.db.models import NewsItemBandRow
    from monitor.novelty import Linker, NoveltyPolicy

    processor = BatchProcessor(
        KeywordClassifier(), NewsStore(engine, SIZES, Linker()), IngestPolicy(), clock=lambda: NOW
    )
    processor.process(
        [
            RawMessage(
                json.dumps(
                    {"id": name, "published_at": (NOW - age).isoformat(), "headline": f"{name} x y"}
                ).encode()
            )
            for name, age in AGES.items()
        ]
    )

    def band_items() -> set[str]:
        with engine.connect() as conn:
            return set(conn.scalars(select(NewsItemBandRow.item_id)))

    assert band_items() == set(AGES)
    kwargs = {"items_max_age": timedelta(days=365), "windows_max_age": timedelta(days=365)}
    result = apply_retention(
        engine, NOW, window_sizes=SIZES, bands_max_age=timedelta(days=30), chunk=7, **kwargs
    )
    assert band_items() == {"at-cutoff", "recent", "fresh"}
    assert result.story_bands == 2 * NoveltyPolicy().bands and result.news_items == 0
