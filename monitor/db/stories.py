"""Story linking inside the store's transaction: candidates from SQL, verdicts from
`monitor.novelty` (pure), band keys written back.

The linker's state is the `news_item_bands` table, not memory: every worker finds the same
candidates, and a restart loses nothing. Consistency between workers: on PostgreSQL the
store takes one transaction-scoped advisory lock before it reads candidates, so concurrent
store transactions link one after the other and each sees the bands the previous one
committed; a story is therefore novel exactly once whichever workers store its copies.
(Every store transaction already waits on the same `all` window row, so the lock adds no
new serialisation, only moves it to the start of the transaction.) SQLite has one writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Connection, select, text
from sqlalchemy.dialects import sqlite

from monitor.db.models import NewsItemRow, UTCDateTime, table
from monitor.novelty import Link, Linker, StoryItem
from monitor.pipeline_types import ClassifiedItem

_LOCK_KEY = 0x66696E6D6F6E  # "finmon": the one advisory lock of story linking


class StoryLinks:
    """Links a batch's new items to the stories stored in the horizon."""

    def __init__(self, linker: Linker) -> None:
        self.linker = linker

    def link(self, conn: Connection, items: Sequence[ClassifiedItem]) -> dict[str, Link]:
        """A `Link` per item whose id is not stored yet, in batch order. Call inside the
        store's transaction, before inserting: on PostgreSQL it takes the linking lock."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        news = table(NewsItemRow)
        ids = [i.item.id for i in items]
        stored = set(conn.scalars(select(news.c.id).where(news.c.id.in_(ids))))
        new = [
            StoryItem(i.item.id, i.item.published_at, i.item.headline, i.item.tickers)
            for i in items
            if i.item.id not in stored
        ]
        if not new:
            return {}
        candidates = self._candidates(conn, new)
        return {link.item_id: link for link in self.linker.link(new, candidates)}

    def _candidates(self, conn: Connection, new: Sequence[StoryItem]) -> list[StoryItem]:
        """For each new item, the stored items within its horizon sharing at least
        `min_shared_bands` of its bands, at most `max_candidates` of them (those sharing
        the most): the same candidates `Linker` would keep from a full pool, fetched once
        for the batch."""
        policy, hasher = self.linker.policy, self.linker.hasher
        pairs = [
            (i, band) for i, n in enumerate(new) for band in hasher.fingerprint(n.headline).bands
        ]
        windows = [
            (i, n.published_at - policy.horizon, n.published_at + policy.horizon)
            for i, n in enumerate(new)
        ]
        params = {
            **_wanted_params(conn.dialect.name, pairs, windows),
            "min_shared": policy.min_shared_bands,
            "per_item": policy.max_candidates,
        }
        found = [
            StoryItem(
                row.id,
                row.published_at,
                row.headline,
                tuple(row.tickers or ()),
                row.story_id or row.id,
            )
            for row in conn.execute(_candidates_query(conn.dialect.name), params)
        ]
        return sorted(found, key=lambda c: (c.published_at, c.item_id))

    @staticmethod
    def band_rows(
        links: dict[str, Link], inserted: set[str], published: dict[str, datetime]
    ) -> list[dict[str, Any]]:
        """The `news_item_bands` rows of the items this transaction inserted."""
        rows: list[dict[str, Any]] = [
            {"band": band, "item_id": item_id, "published_at": published[item_id]}
            for item_id, link in links.items()
            if item_id in inserted
            for band in dict.fromkeys(link.bands)
        ]
        rows.sort(key=lambda r: r["band"])  # index pages in order, and one lock order
        return rows


_WANTED = {
    # (item index, band) pairs with the item's horizon, as array literals on PostgreSQL
    # (where the planner estimates them; a JSON list of the same rows ran slower) and one list
    # on SQLite (where a join of two JSON lists was slower than the lookups). Either way the
    # statement's text does not depend on the batch, so it is compiled once.
    "postgresql": """
        SELECT p.idx, p.band, w.lo, w.hi
        FROM unnest(CAST(:pair_idx AS integer[]), CAST(:pair_band AS bigint[])) AS p(idx, band)
        JOIN unnest(
            CAST(:item_idx AS integer[]),
            CAST(:item_lo AS timestamptz[]),
            CAST(:item_hi AS timestamptz[])
        ) AS w(idx, lo, hi) ON w.idx = p.idx""",
    "sqlite": """
        SELECT json_extract(value, '$[0]') AS idx, json_extract(value, '$[1]') AS band,
               json_extract(value, '$[2]') AS lo, json_extract(value, '$[3]') AS hi
        FROM json_each(:wanted)""",
}


@cache
def _candidates_query(dialect: str) -> Any:
    """Per new item, its stored candidates ranked by shared bands (ties by id), the first
    `per_item` kept; then those items' rows. The band lookups use the primary key
    (band, item_id); the horizon is each item's own."""
    items = table(NewsItemRow)
    # assembled from this module's constants only: no value ever enters the text
    return text(
        f"""
        WITH wanted AS ({_WANTED[dialect]}),
        shared AS (
            SELECT wanted.idx, b.item_id, count(*) AS n
            FROM wanted
            JOIN news_item_bands AS b
              ON b.band = wanted.band AND b.published_at BETWEEN wanted.lo AND wanted.hi
            GROUP BY wanted.idx, b.item_id
            HAVING count(*) >= :min_shared
        ),
        ranked AS (
            SELECT item_id, row_number() OVER (PARTITION BY idx ORDER BY n DESC, item_id) AS r
            FROM shared
        )
        SELECT id, published_at, headline, tickers, story_id FROM news_items
        WHERE id IN (SELECT item_id FROM ranked WHERE r <= :per_item)
        """  # noqa: S608
    ).columns(items.c.id, items.c.published_at, items.c.headline, items.c.tickers, items.c.story_id)


def _wanted_params(
    dialect: str, pairs: list[tuple[int, int]], windows: list[tuple[int, datetime, datetime]]
) -> dict[str, object]:
    if dialect == "postgresql":
        return {
            "pair_idx": _pg_array(i for i, _ in pairs),
            "pair_band": _pg_array(band for _, band in pairs),
            "item_idx": _pg_array(i for i, _, _ in windows),
            "item_lo": _pg_array(f'"{lo.isoformat()}"' for _, lo, _ in windows),
            "item_hi": _pg_array(f'"{hi.isoformat()}"' for _, _, hi in windows),
        }
    bounds = {i: (_sqlite_text(lo), _sqlite_text(hi)) for i, lo, hi in windows}
    return {"wanted": orjson.dumps([(i, band, *bounds[i]) for i, band in pairs]).decode()}


def _pg_array(values: Iterable[object]) -> str:
    """An array literal, which the statement casts: psycopg adapts a list element by element
    in Python, which for a batch's band keys took longer than PostgreSQL's lookups."""
    return "{" + ",".join(map(str, values)) + "}"


def _sqlite_bind() -> Callable[[datetime], str]:
    """The text SQLite stores for a `UTCDateTime` (and compares as text), from the column
    type's own bind processing, so the two cannot drift apart."""
    dialect = sqlite.dialect()
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None  # SQLite's DATETIME binds as text
    return bind


_sqlite_text = _sqlite_bind()
