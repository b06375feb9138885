"""The ids each feed has published (SQL), so a restart never republishes an entry."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.db.models import IngestSeenRow, table

_CHUNK = 500


class SeenIds:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.table = table(IngestSeenRow)

    def unseen(self, feed: str, ids: Collection[str]) -> list[str]:
        """`ids` not published yet by `feed`, in the given order."""
        ordered = list(dict.fromkeys(ids))
        seen: set[str] = set()
        with self.engine.connect() as conn:
            for offset in range(0, len(ordered), _CHUNK):
                seen.update(
                    conn.scalars(
                        select(self.table.c.item_id).where(
                            self.table.c.feed == feed,
                            self.table.c.item_id.in_(ordered[offset : offset + _CHUNK]),
                        )
                    )
                )
        return [i for i in ordered if i not in seen]

    def mark(self, feed: str, ids: Collection[str], now: datetime) -> None:
        """Remember `ids` as published (call only after the broker acknowledged them)."""
        if not ids:
            return
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        rows = [{"feed": feed, "item_id": i, "seen_at": now} for i in ids]
        with self.engine.begin() as conn:
            conn.execute(insert(self.table).on_conflict_do_nothing(), rows)

    def forget(self, before: datetime) -> int:
        """Forget ids seen before `before` (the horizon); returns how many."""
        with self.engine.begin() as conn:
            return conn.execute(delete(self.table).where(self.table.c.seen_at < before)).rowcount
