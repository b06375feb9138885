"""Storing a classified batch: items and their window deltas, in one transaction.

Exactly-once counting on an at-least-once feed rests on one rule: an item's window deltas are
added only when its row is newly inserted in the same transaction. A redelivered id inserts
nothing, so it adds nothing; a crash before commit stores neither.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson
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

from monitor.db.models import (
    NewsItemBandRow,
    NewsItemRow,
    NewsItemTickerRow,
    TrendWindowRow,
    UTCDateTime,
    table,
)
from monitor.db.stories import StoryLinks
from monitor.novelty import Link, Linker
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
    """Writes classified batches; the only writer of `news_items`, `news_item_bands` and
    `trend_windows`. With a `linker`, each new item gets its story (`monitor.db.stories`)
    in the same transaction, so a redelivered item, which inserts nothing, never counts
    as a story twice either."""

    def __init__(
        self, engine: Engine, window_sizes: Iterable[timedelta], linker: Linker | None = None
    ) -> None:
        self.engine = engine
        self.window_sizes = list(window_sizes)
        self.stories = StoryLinks(linker) if linker is not None else None

    def store(self, items: Sequence[ClassifiedItem], *, now: datetime | None = None) -> StoreResult:
        """Store `items` (unique ids within the batch) and add new ones to their windows."""
        now = _aware(now or datetime.now(UTC))
        result = StoreResult()
        if not items:
            return result
        with self.engine.begin() as conn:
            links = self.stories.link(conn, items) if self.stories is not None else {}
            inserted_ids = self._insert_items(conn, items, now, links)
            for item in items:
                (result.inserted if item.item.id in inserted_ids else result.duplicates).append(
                    item
                )
            result.conflicts = self._conflicts(conn, result.duplicates)
            result.windows = aggregate(
                (_observation(i, links.get(i.item.id)) for i in result.inserted),
                self.window_sizes,
            )
            self._add_to_windows(conn, result.windows, now)
        for item in result.conflicts:
            log.warning(
                "duplicate id with different content ignored (first write wins)",
                extra={"item_id": item.item.id},
            )
        return result

    def _insert_items(
        self,
        conn: Connection,
        items: Sequence[ClassifiedItem],
        now: datetime,
        links: dict[str, Link],
    ) -> set[str]:
        statements = _statements(conn.dialect.name)
        rows = [_row(i, now, links.get(i.item.id)) for i in items]
        inserted = set(conn.scalars(statements.items, _params(conn, rows)).all())
        band_rows = StoryLinks.band_rows(
            links, inserted, {i.item.id: i.item.published_at for i in items}
        )
        if band_rows:
            conn.execute(statements.bands, _params(conn, band_rows))
        ticker_rows: list[dict[str, object]] = [
            {
                "item_id": i.item.id,
                "ticker": t.ticker,
                "published_at": i.item.published_at,
                "sentiment": t.sentiment,
                "sentiment_score": _finite(t.score),
                "target": t.target,
            }
            for i in items
            if i.item.id in inserted
            for t in i.ticker_sentiments()
        ]
        if ticker_rows:
            conn.execute(statements.tickers, _params(conn, ticker_rows))
        return inserted

    def _conflicts(
        self, conn: Connection, duplicates: list[ClassifiedItem]
    ) -> list[ClassifiedItem]:
        if not duplicates:
            return []
        items = table(NewsItemRow)
        ids = [d.item.id for d in duplicates]
        stored = dict(
            conn.execute(select(items.c.id, items.c.content_hash).where(items.c.id.in_(ids))).all()
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
                "n_novel": c.n_novel,
                "n_novel_bearish": c.novel_bearish,
                "n_novel_neutral": c.novel_neutral,
                "n_novel_bullish": c.novel_bullish,
                "novel_score_sum": c.novel_score_sum,
                "updated_at": now,
            }
            # sorted keys: concurrent workers lock rows in one order, so they cannot deadlock
            for k, c in sorted(deltas.items())
        ]
        conn.execute(_statements(conn.dialect.name).windows, _params(conn, rows))


@dataclass(frozen=True, slots=True)
class _Statements:
    """The store's three writes, built once per database kind: building a SQLAlchemy
    statement costs more CPU than PostgreSQL spends running it."""

    items: Any
    tickers: Any
    bands: Any
    windows: Any


@cache
def _statements(dialect: str) -> _Statements:
    def insert(table: Table) -> Any:
        return _insert_json_rowset(table) if dialect == "postgresql" else sqlite.insert(table)

    items = table(NewsItemRow)
    windows = table(TrendWindowRow)
    upsert = insert(windows)
    excluded = upsert.excluded
    total = windows.c.n_total + excluded.n_total
    return _Statements(
        items=insert(items).on_conflict_do_nothing(index_elements=["id"]).returning(items.c.id),
        tickers=insert(table(NewsItemTickerRow)),
        bands=insert(table(NewsItemBandRow)).on_conflict_do_nothing(),
        windows=upsert.on_conflict_do_update(
            index_elements=["window_seconds", "window_start", "dimension", "key"],
            set_={
                "n_bearish": windows.c.n_bearish + excluded.n_bearish,
                "n_neutral": windows.c.n_neutral + excluded.n_neutral,
                "n_bullish": windows.c.n_bullish + excluded.n_bullish,
                "n_total": total,
                "score_sum": windows.c.score_sum + excluded.score_sum,
                "mean_score": (windows.c.score_sum + excluded.score_sum) / total,
                **{
                    name: windows.c[name] + excluded[name]
                    for name in (
                        "n_novel",
                        "n_novel_bearish",
                        "n_novel_neutral",
                        "n_novel_bullish",
                        "novel_score_sum",
                    )
                },
                "updated_at": excluded.updated_at,
            },
        ),
    )


def _params(conn: Connection, rows: list[dict[str, object]]) -> Any:
    """Parameters for a `_statements` write: every row in one JSON document on PostgreSQL
    (see `_insert_json_rowset`), the rows themselves (executemany) on SQLite."""
    if conn.dialect.name == "postgresql":
        return {"rows": _rowset_document(rows)}
    return rows


def _rowset_document(rows: list[dict[str, object]]) -> str:
    """The rows as one JSON document, by orjson: the standard library with a hook for
    datetimes was a large share of the worker's CPU at full load, orjson a small fraction
    of it (docs/performance.md). orjson writes aware datetimes as ISO 8601 with their offset, as
    PostgreSQL's timestamptz reads them; the two things it does not refuse are refused
    before, where the rows are built: naive datetimes (`_aware`) and NaN, which it would
    write as null (`_row`). It does refuse integers beyond 64 bits, which JSON allows in an
    item's extra fields: those rare documents go through the standard library."""
    try:
        return orjson.dumps(rows).decode()
    except orjson.JSONEncodeError:
        return json.dumps(rows, default=_iso, allow_nan=False)


def _insert_json_rowset(table: Table) -> Any:
    """PostgreSQL: `INSERT INTO table SELECT ... FROM json_to_recordset(:rows)`, where `rows`
    is every row of the batch in a single JSON document (`_params`).

    The statement's text does not depend on the number of rows, so it is compiled and
    parsed once and PostgreSQL prepares it; the batch is serialised by orjson
    (`_rowset_document`) and parsed by PostgreSQL, both in C. The multi-row VALUES list this
    replaces (one parameter per row
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


def _aware(value: datetime) -> datetime:
    """A datetime for a UTC column: naive values are refused, as `UTCDateTime` refuses them
    on SQLite (a naive time would be read in the session's time zone)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _finite(*values: float) -> float:
    """Refuse a NaN or infinite probability: as a NULL it would fail a NOT NULL column, a
    database error the worker retries forever, instead of dead-lettering the one item.
    Returns the first value, for use inline."""
    if not all(map(math.isfinite, values)):
        raise ValueError(f"non-finite classifier output {values}")
    return values[0]


def _observation(item: ClassifiedItem, link: Link | None) -> Observation:
    c = item.classification
    return Observation(
        item.item.published_at,
        c.topic,
        item.item.tickers,
        c.sentiment,
        c.sentiment_score,
        link is None or link.is_novel,
        tuple((t.ticker, t.sentiment, t.score) for t in item.towards if t.target is not None),
    )


def _row(item: ClassifiedItem, now: datetime, link: Link | None) -> dict[str, object]:
    news, c = item.item, item.classification
    probs = c.sentiment_probs
    p_bearish, p_neutral, p_bullish = (
        probs.get("bearish", 0.0),
        probs.get("neutral", 0.0),
        probs.get("bullish", 0.0),
    )
    _finite(c.topic_confidence, c.sentiment_score, p_bearish, p_neutral, p_bullish)
    return {
        "id": news.id,
        "published_at": _aware(news.published_at),
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
        "p_bearish": p_bearish,
        "p_neutral": p_neutral,
        "p_bullish": p_bullish,
        "model_version": c.model_version,
        "kafka_topic": item.origin.topic if item.origin else None,
        "kafka_partition": item.origin.partition if item.origin else None,
        "kafka_offset": item.origin.offset if item.origin else None,
        "story_id": link.story_id if link else None,
        "is_novel": link.is_novel if link else None,
    }
