"""Retention: deleting rows older than the configured ages, so months of running stay bounded.

News items go first (they are large: headline, body, JSON) and trend windows much later (they
are small and hold the history analysts chart and alert baselines read). Deleting is by age
alone, so running it twice, or on several workers at once, deletes nothing more: the job is
idempotent. Items go in short chunked transactions, so a first run over a long backlog never
holds locks on `news_items` for long while workers keep inserting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, tuple_

from monitor.db.models import NewsItemBandRow, NewsItemRow, TrendWindowRow, table

CHUNK = 5000


@dataclass(frozen=True, slots=True)
class RetentionResult:
    news_items: int = 0
    """Deleted items; their `news_item_tickers` rows go with them (ON DELETE CASCADE)."""
    trend_windows: int = 0
    story_bands: int = 0
    """Band keys of items older than the novelty horizon (no new item can link to them)."""

    def __bool__(self) -> bool:
        return bool(self.news_items or self.trend_windows or self.story_bands)

    def __str__(self) -> str:
        return (
            f"deleted {self.news_items} news items, {self.trend_windows} trend windows and "
            f"{self.story_bands} story band keys"
        )


def apply_retention(
    engine: Engine,
    now: datetime,
    *,
    items_max_age: timedelta,
    windows_max_age: timedelta,
    window_sizes: Iterable[timedelta],
    bands_max_age: timedelta | None = None,
    chunk: int = CHUNK,
) -> RetentionResult:
    """Delete items published before `now - items_max_age` and windows of `window_sizes`
    that ended by `now - windows_max_age`.

    Windows are deleted per size because the primary key starts with (window_seconds,
    window_start): each delete is an index range scan, not a scan of the whole table.
    Windows of a size no longer configured are left alone (delete them by hand if unwanted).
    Story band keys published before `now - bands_max_age` go too (the worker passes twice
    the novelty horizon, so late items still find the stories of their day).
    """
    return RetentionResult(
        news_items=_delete_items(engine, now - items_max_age, chunk),
        trend_windows=_delete_windows(engine, now - windows_max_age, window_sizes),
        story_bands=_delete_bands(engine, now - bands_max_age, chunk) if bands_max_age else 0,
    )


def _delete_bands(engine: Engine, cutoff: datetime, chunk: int) -> int:
    bands = table(NewsItemBandRow)
    deleted = 0
    while True:
        with engine.begin() as conn:
            oldest = (
                select(bands.c.band, bands.c.item_id)
                .where(bands.c.published_at < cutoff)
                .limit(chunk)
                .subquery()
            )
            count = conn.execute(
                delete(bands).where(
                    tuple_(bands.c.band, bands.c.item_id).in_(
                        select(oldest.c.band, oldest.c.item_id)
                    )
                )
            ).rowcount
        deleted += count
        if count < chunk:
            return deleted


def _delete_items(engine: Engine, cutoff: datetime, chunk: int) -> int:
    items = table(NewsItemRow)
    oldest = select(items.c.id).where(items.c.published_at < cutoff).limit(chunk)
    statement = delete(items).where(items.c.id.in_(oldest.scalar_subquery()))
    deleted = 0
    while True:
        with engine.begin() as conn:
            count = conn.execute(statement).rowcount
        deleted += count
        if count < chunk:
            return deleted


def _delete_windows(engine: Engine, cutoff: datetime, sizes: Iterable[timedelta]) -> int:
    windows = table(TrendWindowRow)
    deleted = 0
    with engine.begin() as conn:
        for size in sorted(set(sizes)):
            deleted += conn.execute(
                delete(windows).where(
                    windows.c.window_seconds == int(size.total_seconds()),
                    windows.c.window_start <= cutoff - size,  # so window_end <= cutoff
                )
            ).rowcount
    return deleted
