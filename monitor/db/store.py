"""Storing a classified batch: items and their window deltas, in one transaction.

Exactly-once counting on an at-least-once feed rests on one rule: an item's window deltas are
added only when its row is newly inserted in the same transaction. A redelivered id inserts
nothing, so it adds nothing; a crash before commit stores neither.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    Insert,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from monitor.db.models import NewsItemRow, NewsItemTickerRow, TrendWindowRow, UTCDateTime
from monitor.pipeline_types import ClassifiedItem
from monitor.windows import Observation, WindowCounts, WindowKey, aggregate

log = logging.getLogger(__name__)
_CHUNK = 500


@dataclass(slots=True)
class StoreResult:
    """What one stored batch changed."""

    inserted: list[ClassifiedItem] = field(default_factory=list)
    duplicates: list[ClassifiedItem] = field(default_factory=list)
    conflicts: list[ClassifiedItem] = field(default_factory=list)
    """Duplicates whose content differs from the stored row (first write wins)."""
    windows: dict[WindowKey, WindowCounts] = field(default_factory=dict)


def _insert_many(conn: Connection, table: Table, rows: list[dict[str, object]]) -> tuple[Any, Any]:
    """An INSERT of `rows` for the connection's database, and its parameters: one statement
    over arrays on PostgreSQL (`_insert_unnest`), an executemany on SQLite."""
    if conn.dialect.name == "postgresql":
        return _insert_unnest(table, rows)
    return sqlite.insert(table), rows


class NewsStore:
    """Writes classified batches; the only writer of `news_items` and `trend_windows`."""

    def __init__(self, engine: Engine, window_sizes: Iterable[timedelta]) -> None:
        self.engine = engine
        self.window_sizes = list(window_sizes)

    def store(self, items: Sequence[ClassifiedItem], *, now: datetime | None = None) -> StoreResult:
        """Store `items` (unique ids within the batch) and add new ones to their windows."""
        now = now or datetime.now(UTC)
        result = StoreResult()
        if not items:
            return result
        with self.engine.begin() as conn:
            inserted_ids = self._insert_items(conn, items, now)
            for item in items:
                (result.inserted if item.item.id in inserted_ids else result.duplicates).append(
                    item
                )
            result.conflicts = self._conflicts(conn, result.duplicates)
            result.windows = aggregate(
                (_observation(i) for i in result.inserted), self.window_sizes
            )
            self._add_to_windows(conn, result.windows, now)
        for item in result.conflicts:
            log.warning(
                "duplicate id with different content ignored (first write wins)",
                extra={"item_id": item.item.id},
            )
        return result

    def _insert_items(
        self, conn: Connection, items: Sequence[ClassifiedItem], now: datetime
    ) -> set[str]:
        table = NewsItemRow.__table__
        inserted: set[str] = set()
        for start in range(0, len(items), _CHUNK):
            rows = [_row(i, now) for i in items[start : start + _CHUNK]]
            stmt, params = _insert_many(conn, table, rows)
            stmt = stmt.on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
            inserted.update(conn.scalars(stmt, params).all())
        ticker_rows = [
            {"item_id": i.item.id, "ticker": t, "published_at": i.item.published_at}
            for i in items
            if i.item.id in inserted
            for t in i.item.tickers
        ]
        if ticker_rows:
            conn.execute(NewsItemTickerRow.__table__.insert(), ticker_rows)
        return inserted

    def _conflicts(
        self, conn: Connection, duplicates: list[ClassifiedItem]
    ) -> list[ClassifiedItem]:
        if not duplicates:
            return []
        table = NewsItemRow.__table__
        ids = [d.item.id for d in duplicates]
        stored = dict(
            conn.execute(select(table.c.id, table.c.content_hash).where(table.c.id.in_(ids))).all()
        )
        return [d for d in duplicates if stored.get(d.item.id) != d.item.content_hash]

    def _add_to_windows(
        self, conn: Connection, deltas: dict[WindowKey, WindowCounts], now: datetime
    ) -> None:
        if not deltas:
            return
        table = TrendWindowRow.__table__
        rows = [
            {
                "window_seconds": k.window_seconds,
                "window_start": k.window_start,
                "dimension": k.dimension,
                "key": k.key,
                "window_end": k.window_end,
                "n_bearish": c.n_bearish,
                "n_neutral": c.n_neutral,
                "n_bullish": c.n_bullish,
                "n_total": c.n_total,
                "score_sum": c.score_sum,
                "mean_score": c.mean_score,
                "updated_at": now,
            }
            # sorted keys: concurrent workers lock rows in one order, so they cannot deadlock
            for k, c in sorted(deltas.items())
        ]
        stmt, params = _insert_many(conn, table, rows)
        excluded = stmt.excluded
        total = table.c.n_total + excluded.n_total
        stmt = stmt.on_conflict_do_update(
            index_elements=["window_seconds", "window_start", "dimension", "key"],
            set_={
                "n_bearish": table.c.n_bearish + excluded.n_bearish,
                "n_neutral": table.c.n_neutral + excluded.n_neutral,
                "n_bullish": table.c.n_bullish + excluded.n_bullish,
                "n_total": total,
                "score_sum": table.c.score_sum + excluded.score_sum,
                "mean_score": (table.c.score_sum + excluded.score_sum) / total,
                "updated_at": excluded.updated_at,
            },
        )
        conn.execute(stmt, params)


def _insert_unnest(table: Table, rows: list[dict[str, object]]) -> tuple[Insert, dict]:
    """PostgreSQL: `INSERT INTO table SELECT ... FROM unnest(one array per column)`, and
    its parameters (`rows`' values, every datetime already UTC-aware).

    Its SQL does not depend on the number of rows, so it is compiled and parsed once and
    PostgreSQL prepares it; the multi-row VALUES list it replaces (one parameter per row and
    column) was parsed again for every batch and cost a fifth of the store path
    (docs/performance.md). JSON columns travel as text: an array of JSON lists cannot be
    unnested into rows. Callers add the ON CONFLICT clause, the same as the SQLite path's."""
    names = [c.name for c in table.columns]
    arrays, params = [], {}
    for column in table.columns:
        is_json = isinstance(column.type, JSON)
        element: Any = column.type
        if is_json or isinstance(column.type, String):
            element = Text()  # not VARCHAR(n): a cast would silently cut an over-long value
        elif isinstance(column.type, UTCDateTime):
            element = DateTime(timezone=True)
        arrays.append(cast(bindparam(f"u_{column.name}"), postgresql.ARRAY(element)))
        values = [r[column.name] for r in rows]
        params[f"u_{column.name}"] = [json.dumps(v) for v in values] if is_json else values
    rowset = func.unnest(*arrays).table_valued(*names).render_derived(name="u")
    selected = [
        cast(rowset.c[c.name], c.type) if isinstance(c.type, JSON) else rowset.c[c.name]
        for c in table.columns
    ]
    return postgresql.insert(table).from_select(names, select(*selected)), params


def _observation(item: ClassifiedItem) -> Observation:
    c = item.classification
    return Observation(
        item.item.published_at, c.topic, item.item.tickers, c.sentiment, c.sentiment_score
    )


def _row(item: ClassifiedItem, now: datetime) -> dict[str, object]:
    news, c = item.item, item.classification
    return {
        "id": news.id,
        "published_at": news.published_at,
        "received_at": now,
        "headline": news.headline,
        "body": news.body,
        "body_truncated": news.body_truncated,
        "source": news.source,
        "url": news.url,
        "lang": news.lang,
        "tickers": list(news.tickers),
        "extra": news.extra,
        "content_hash": news.content_hash,
        "topic": c.topic,
        "topic_confidence": c.topic_confidence,
        "sentiment": c.sentiment,
        "sentiment_score": c.sentiment_score,
        "p_bearish": c.sentiment_probs.get("bearish", 0.0),
        "p_neutral": c.sentiment_probs.get("neutral", 0.0),
        "p_bullish": c.sentiment_probs.get("bullish", 0.0),
        "model_version": c.model_version,
        "kafka_topic": item.origin.topic if item.origin else None,
        "kafka_partition": item.origin.partition if item.origin else None,
        "kafka_offset": item.origin.offset if item.origin else None,
    }
