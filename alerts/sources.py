"""Reads from the core tables: trend windows for detection, headlines for notifications."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, select

from monitor.db.models import NewsItemRow, NewsItemTickerRow, TrendWindowRow, table
from monitor.windows import WindowCounts

_CHUNK = 500


def read_windows(
    conn: Connection,
    dimension: str,
    window_seconds: int,
    keys: Collection[str],
    first_start: datetime,
    last_start: datetime,
) -> dict[str, dict[datetime, WindowCounts]]:
    """Counts per key and window start for windows starting in [first_start, last_start]."""
    t = table(TrendWindowRow)
    keys = sorted(keys)
    history: dict[str, dict[datetime, WindowCounts]] = {}
    for offset in range(0, len(keys), _CHUNK):
        rows = conn.execute(
            select(
                t.c.key,
                t.c.window_start,
                t.c.n_bearish,
                t.c.n_neutral,
                t.c.n_bullish,
                t.c.score_sum,
                t.c.n_novel_bearish,
                t.c.n_novel_neutral,
                t.c.n_novel_bullish,
                t.c.novel_score_sum,
            ).where(
                t.c.dimension == dimension,
                t.c.key.in_(keys[offset : offset + _CHUNK]),
                t.c.window_seconds == window_seconds,
                t.c.window_start.between(first_start, last_start),
            )
        )
        for key, start, *counts in rows:
            history.setdefault(key, {})[start] = WindowCounts(*counts)
    return history


def sample_headlines(
    conn: Connection,
    dimension: str,
    key: str,
    start: datetime,
    end: datetime,
    limit: int,
    *,
    stories: bool = False,
) -> list[dict[str, Any]]:
    """Up to `limit` headlines of `key` published in [start, end), most bearish first;
    with `stories`, only each story's first item (a copy would repeat a headline)."""
    if limit <= 0:
        return []
    items = table(NewsItemRow)
    published = items.c.published_at
    query = select(
        items.c.id,
        items.c.headline,
        published,
        items.c.source,
        items.c.url,
        items.c.sentiment,
        items.c.sentiment_score,
    )
    if dimension == "ticker":
        tickers = table(NewsItemTickerRow)
        query = query.join(tickers, tickers.c.item_id == items.c.id).where(tickers.c.ticker == key)
        published = tickers.c.published_at
    elif dimension == "topic":
        query = query.where(items.c.topic == key)
    query = query.where(published >= start, published < end)
    if stories:
        query = query.where(items.c.is_novel.isnot(False))
    query = query.order_by(
        case((items.c.sentiment == "bearish", 0), else_=1),
        items.c.sentiment_score,
        items.c.id,
    )
    return [
        {
            "id": row.id,
            "headline": row.headline,
            "published_at": row.published_at.isoformat(),
            "source": row.source,
            "url": row.url,
            "sentiment": row.sentiment,
            "sentiment_score": round(row.sentiment_score, 4),
        }
        for row in conn.execute(query.limit(limit))
    ]
