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

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select, text

from monitor.db.models import NewsItemBandRow, NewsItemRow
from monitor.novelty import Link, Linker, StoryItem
from monitor.pipeline_types import ClassifiedItem

_LOCK_KEY = 0x66696E6D6F6E  # "finmon": the one advisory lock of story linking
_CHUNK = 2000


class StoryLinks:
    """Links a batch's new items to the stories stored in the horizon."""

    def __init__(self, linker: Linker) -> None:
        self.linker = linker

    def link(self, conn: Connection, items: Sequence[ClassifiedItem]) -> dict[str, Link]:
        """A `Link` per item whose id is not stored yet, in batch order. Call inside the
        store's transaction, before inserting: on PostgreSQL it takes the linking lock."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        table = NewsItemRow.__table__
        ids = [i.item.id for i in items]
        stored = set(conn.scalars(select(table.c.id).where(table.c.id.in_(ids))))
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
        candidates = self._candidates(conn, sorted(bands), first, last)
        return {link.item_id: link for link in self.linker.link(new, candidates)}

    @staticmethod
    def _candidates(
        conn: Connection, bands: list[int], first: datetime, last: datetime
    ) -> list[StoryItem]:
        items, keys = NewsItemRow.__table__, NewsItemBandRow.__table__
        found: dict[str, StoryItem] = {}
        for offset in range(0, len(bands), _CHUNK):
            query = (
                select(
                    items.c.id,
                    items.c.published_at,
                    items.c.headline,
                    items.c.tickers,
                    items.c.story_id,
                )
                .join(keys, keys.c.item_id == items.c.id)
                .where(
                    keys.c.band.in_(bands[offset : offset + _CHUNK]),
                    keys.c.published_at.between(first, last),
                )
            )
            for row in conn.execute(query):
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
    ) -> list[dict[str, object]]:
        """The `news_item_bands` rows of the items this transaction inserted."""
        return [
            {"band": band, "item_id": item_id, "published_at": published[item_id]}
            for item_id, link in links.items()
            if item_id in inserted
            for band in dict.fromkeys(link.bands)
        ]
