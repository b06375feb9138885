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

import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Connection, any_, bindparam, cast, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY

from monitor.db.models import NewsItemBandRow, NewsItemRow, table
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
        bands = {b for n in new for b in self.linker.hasher.fingerprint(n.headline).bands}
        horizon = self.linker.policy.horizon
        first = min(n.published_at for n in new) - horizon
        last = max(n.published_at for n in new) + horizon
        candidates = self._candidates(
            conn, sorted(bands), first, last, self.linker.policy.min_shared_bands
        )
        return {link.item_id: link for link in self.linker.link(new, candidates)}

    @staticmethod
    def _candidates(
        conn: Connection, bands: list[int], first: datetime, last: datetime, min_shared: int
    ) -> list[StoryItem]:
        """Stored items in [first, last] sharing `min_shared` of `bands` (some new item
        may share fewer with them: the linker checks each pair again)."""
        found: dict[str, StoryItem] = {}
        params = {
            "bands": _band_list(conn.dialect.name, bands),
            "first": first,
            "last": last,
            "min_shared": min_shared,
        }
        for row in conn.execute(_candidates_query(conn.dialect.name), params):
            found[row.id] = StoryItem(
                row.id,
                row.published_at,
                row.headline,
                tuple(row.tickers or ()),
                row.story_id or row.id,
            )
        return sorted(found.values(), key=lambda c: (c.published_at, c.item_id))

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


@cache
def _candidates_query(dialect: str) -> Any:
    """Items in the horizon sharing a band with the batch. The band keys travel as one
    parameter (an array on PostgreSQL, a JSON list on SQLite), so the statement is compiled
    once: an IN list of a batch's ~2500 keys cost more to build than to run."""
    items, keys = table(NewsItemRow), table(NewsItemBandRow)
    wanted: Any = bindparam("bands")
    if dialect == "postgresql":
        band_matches = keys.c.band == any_(cast(wanted, ARRAY(BigInteger)))
    else:
        listed = func.json_each(wanted).table_valued("value")
        band_matches = keys.c.band.in_(select(listed.c.value))
    sharing = (
        select(keys.c.item_id)
        .where(band_matches, keys.c.published_at.between(bindparam("first"), bindparam("last")))
        .group_by(keys.c.item_id)
        .having(func.count() >= bindparam("min_shared"))
    )
    return select(
        items.c.id, items.c.published_at, items.c.headline, items.c.tickers, items.c.story_id
    ).where(items.c.id.in_(sharing))


def _band_list(dialect: str, bands: list[int]) -> object:
    return bands if dialect == "postgresql" else json.dumps(bands)
