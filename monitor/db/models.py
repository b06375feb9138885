"""SQLAlchemy 2 table definitions: the single source the migrations are checked against."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL keeps the zone (timestamptz); SQLite has no zone type, so values are stored as
    naive UTC and given their zone back on the way out. Naive values are refused on the way
    in: time is UTC-aware everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table(model: type[Base]) -> Table:
    """The `Table` a mapped class is declared on (SQLAlchemy types `__table__` as any
    `FromClause`; every finmon model is a plain table)."""
    declared = model.__table__
    assert isinstance(declared, Table), f"{model.__name__} is not mapped to a table"
    return declared


class NewsItemRow(Base):
    """One classified news item per id; redeliveries never add a second row."""

    __tablename__ = "news_items"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    headline: Mapped[str] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    body_truncated: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str | None] = mapped_column(String(2048))
    url: Mapped[str | None] = mapped_column(String(2048))
    lang: Mapped[str | None] = mapped_column(String(2048))
    tickers: Mapped[list[str]] = mapped_column(JSON)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(64), index=True)
    topic_confidence: Mapped[float] = mapped_column(Float)
    sentiment: Mapped[str] = mapped_column(String(16))
    sentiment_score: Mapped[float] = mapped_column(Float)
    p_bearish: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    p_bullish: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(128))
    kafka_topic: Mapped[str | None] = mapped_column(String(255))
    kafka_partition: Mapped[int | None] = mapped_column(Integer)
    kafka_offset: Mapped[int | None] = mapped_column(Integer)
    story_id: Mapped[str | None] = mapped_column(String(256), index=True)
    """The id of the first stored item of this item's story (its own id when novel);
    NULL for items stored before stories existed (migration 0006) or with novelty off."""
    is_novel: Mapped[bool | None] = mapped_column()


class NewsItemTickerRow(Base):
    """Item-ticker pairs, so analysts can join and filter by ticker in plain SQL, with the
    sentiment the ticker's windows counted for the item: towards the ticker when the model
    was asked about it (`target` says as what), else the item's own (`target` NULL)."""

    __tablename__ = "news_item_tickers"

    item_id: Mapped[str] = mapped_column(
        String(256), ForeignKey("news_items.id", ondelete="CASCADE"), primary_key=True
    )
    ticker: Mapped[str] = mapped_column(String(16), primary_key=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sentiment: Mapped[str] = mapped_column(String(16))
    sentiment_score: Mapped[float] = mapped_column(Float)
    target: Mapped[str | None] = mapped_column(String(256))

    __table_args__ = (Index("ix_news_item_tickers_ticker_published", "ticker", "published_at"),)


class NewsItemBandRow(Base):
    """The MinHash/LSH band keys of recent items (`monitor.novelty`): two items sharing
    bands are candidates for one story. Kept for the novelty horizon (retention deletes
    older ones), so candidates are found by an index lookup, by every worker alike.

    No foreign key to `news_items`: its check, once per row (20 a stored item), was the
    largest part of linking's cost on PostgreSQL. A band whose item is gone finds nothing
    (candidates are joined to `news_items`) and goes with the horizon."""

    __tablename__ = "news_item_bands"

    band: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class TrendWindowRow(Base):
    """Sentiment counts of one [window_start, window_end) window for one dimension/key."""

    __tablename__ = "trend_windows"

    window_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    n_bearish: Mapped[int] = mapped_column(Integer)
    n_neutral: Mapped[int] = mapped_column(Integer)
    n_bullish: Mapped[int] = mapped_column(Integer)
    n_total: Mapped[int] = mapped_column(Integer)
    score_sum: Mapped[float] = mapped_column(Float)
    mean_score: Mapped[float] = mapped_column(Float)
    n_novel: Mapped[int] = mapped_column(Integer, server_default="0")
    """Items of the window that started a story (`news_items.is_novel`): its stories."""
    n_novel_bearish: Mapped[int] = mapped_column(Integer, server_default="0")
    n_novel_neutral: Mapped[int] = mapped_column(Integer, server_default="0")
    n_novel_bullish: Mapped[int] = mapped_column(Integer, server_default="0")
    novel_score_sum: Mapped[float] = mapped_column(Float, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_trend_windows_lookup", "dimension", "key", "window_seconds", "window_start"),
    )


class IngestSeenRow(Base):
    """Ids `finmon ingest` has published, per feed, so a restart never republishes them;
    forgotten after `ingest.seen_horizon` (the worker's dedup by id stays the final guard)."""

    __tablename__ = "ingest_seen"

    feed: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
