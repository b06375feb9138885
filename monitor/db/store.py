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
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    String,
    Table,
    Text,
    bindparam,
    cast,
    column,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from monitor.db.models import NewsItemRow, NewsItemTickerRow, TrendWindowRow, UTCDateTime
from monitor.pipeline_types import ClassifiedItem
from monitor.windows import Observation, WindowCounts, WindowKey, aggregate

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StoreResult:
    """What one stored batch changed."""

    inserted: list[ClassifiedItem] = field(default_factory=list)
    duplicates: list[ClassifiedItem] = field(default_factory=list)
    conflicts: list[ClassifiedItem] = field(default_factory=list)
    """Duplicates whose content differs from the stored row (first write wins)."""
    windows: dict[WindowKey, WindowCounts] = field(default_factory=dict)


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
        statements = _statements(conn.dialect.name)
        rows = [_row(i, now) for i in items]
        inserted = set(conn.scalars(statements.items, _params(conn, rows)).all())
        ticker_rows = [
            {"item_id": i.item.id, "ticker": t, "published_at": i.item.published_at}
            for i in items
            if i.item.id in inserted
            for t in i.item.tickers
        ]
        if ticker_rows:
            conn.execute(statements.tickers, _params(conn, ticker_rows))
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
            for k, c in sorted(deltas.items(), key=_key_order)
        ]
        conn.execute(_statements(conn.dialect.name).windows, _params(conn, rows))


def _key_order(pair: tuple[WindowKey, WindowCounts]) -> tuple[int, datetime, str, str]:
    key = pair[0]
    return (key.window_seconds, key.window_start, key.dimension, key.key)


@dataclass(frozen=True, slots=True)
class _Statements:
    """The store's three writes, built once per database kind: building a SQLAlchemy
    statement costs more CPU than PostgreSQL spends running it (2-3 ms a batch)."""

    items: Any
    tickers: Any
    windows: Any


@cache
def _statements(dialect: str) -> _Statements:
    def insert(table: Table) -> Any:
        return _insert_json_rowset(table) if dialect == "postgresql" else sqlite.insert(table)

    items = NewsItemRow.__table__
    windows = TrendWindowRow.__table__
    upsert = insert(windows)
    excluded = upsert.excluded
    total = windows.c.n_total + excluded.n_total
    return _Statements(
        items=insert(items).on_conflict_do_nothing(index_elements=["id"]).returning(items.c.id),
        tickers=insert(NewsItemTickerRow.__table__),
        windows=upsert.on_conflict_do_update(
            index_elements=["window_seconds", "window_start", "dimension", "key"],
            set_={
                "n_bearish": windows.c.n_bearish + excluded.n_bearish,
                "n_neutral": windows.c.n_neutral + excluded.n_neutral,
                "n_bullish": windows.c.n_bullish + excluded.n_bullish,
                "n_total": total,
                "score_sum": windows.c.score_sum + excluded.score_sum,
                "mean_score": (windows.c.score_sum + excluded.score_sum) / total,
                "updated_at": excluded.updated_at,
            },
        ),
    )


def _params(conn: Connection, rows: list[dict[str, object]]) -> Any:
    """Parameters for a `_statements` write: every row in one JSON document on PostgreSQL
    (see `_insert_json_rowset`), the rows themselves (executemany) on SQLite."""
    if conn.dialect.name == "postgresql":
        return {"rows": json.dumps(rows, default=_json_value, allow_nan=False)}
    return rows


def _insert_json_rowset(table: Table) -> Any:
    """PostgreSQL: `INSERT INTO table SELECT ... FROM json_to_recordset(:rows)`, where `rows`
    is every row of the batch in a single JSON document (`_params`).

    The statement's text does not depend on the number of rows, so it is compiled and
    parsed once and PostgreSQL prepares it; the batch is serialised by `json.dumps` (C) and
    parsed by PostgreSQL (C). The multi-row VALUES list this replaces (one parameter per row
    and column) was parsed again for every batch, and one array parameter per column spent
    as long quoting every element in Python (docs/performance.md). Callers add the ON
    CONFLICT clause, the same as the SQLite path's."""
    names = [c.name for c in table.columns]
    rowset = (
        func.json_to_recordset(cast(bindparam("rows", type_=Text()), JSON))
        .table_valued(*(column(c.name, _rowset_type(c.type)) for c in table.columns))
        .render_derived(name="u", with_types=True)
    )
    return postgresql.insert(table).from_select(names, select(*(rowset.c[n] for n in names)))


def _rowset_type(column_type: Any) -> Any:
    """How a column is declared in the rowset: text for strings (a VARCHAR(n) there could
    cut an over-long value instead of failing the insert), timestamptz for UTC times."""
    if isinstance(column_type, String):
        return Text()
    if isinstance(column_type, UTCDateTime):
        return DateTime(timezone=True)
    return column_type


_PG_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_UTC_COLUMN = UTCDateTime()  # one instance: building it per value was half of _json_value's time


def _json_value(value: object) -> str:
    """Datetimes in a JSON rowset: checked and converted by the column type, as a bound
    parameter would be (naive values refused), then written as ISO 8601."""
    if isinstance(value, datetime):
        return _UTC_COLUMN.process_bind_param(value, _PG_DIALECT).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


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
