"""ticker sentiment: the sentiment each ticker's windows counted, towards that ticker

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:20:00.000000

`news_item_tickers` gains `sentiment`, `sentiment_score` and `target`. Rows stored before
this revision counted the item's own sentiment for every ticker, so they are backfilled
with it and `target` stays NULL: the new columns say exactly what the windows counted.

The two views over `news_item_tickers` are dropped before the table changes (SQLite
rebuilds the table to add NOT NULL columns, and PostgreSQL refuses to change a column a
view reads) and recreated from revision 0003's own definitions, the hourly view now
counting the per-ticker sentiment; `v_ticker_news` shows both the item's and the ticker's.
"""

from __future__ import annotations

from types import ModuleType

import sqlalchemy as sa
from alembic import context, op
from alembic.script import ScriptDirectory

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_VIEWS = ("v_ticker_sentiment_hourly", "v_ticker_news")


def _revision_0003() -> ModuleType:
    """Revision 0003's module, whose view SQL this revision reuses as it was written."""
    script = ScriptDirectory.from_config(context.config).get_revision("0003")
    assert script is not None
    return script.module


def _ticker_counts(v0003: ModuleType) -> str:
    """0003's counting fragment over the ticker row's own sentiment columns."""
    return v0003._COUNTS.replace("i.sentiment", "t.sentiment")


def _ticker_sentiment_hourly(v0003: ModuleType, sql: object) -> str:
    return f"""
SELECT
    {sql.truncate("hour", "t.published_at")} AS hour_start,
    t.ticker AS ticker,{_ticker_counts(v0003)}
FROM news_item_tickers t
GROUP BY 1, 2"""  # type: ignore[attr-defined]  # noqa: S608 (constant fragments only)


_TICKER_NEWS = """
SELECT
    t.ticker, i.id AS item_id, i.published_at, i.headline, i.source, i.url, i.topic,
    i.sentiment, i.sentiment_score, i.p_bearish, i.p_neutral, i.p_bullish, i.model_version,
    t.sentiment AS ticker_sentiment, t.sentiment_score AS ticker_sentiment_score,
    t.target AS ticker_target
FROM news_item_tickers t
JOIN news_items i ON i.id = t.item_id"""


def upgrade() -> None:
    v0003 = _revision_0003()
    sql = v0003._Sql(op.get_context().dialect.name)
    for name in reversed(_VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("news_item_tickers") as batch:
        batch.add_column(sa.Column("sentiment", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("sentiment_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("target", sa.String(length=256), nullable=True))
    op.execute(
        "UPDATE news_item_tickers SET "
        "sentiment = (SELECT i.sentiment FROM news_items i WHERE i.id = item_id), "
        "sentiment_score = (SELECT i.sentiment_score FROM news_items i WHERE i.id = item_id)"
    )
    with op.batch_alter_table("news_item_tickers") as batch:
        batch.alter_column("sentiment", existing_type=sa.String(length=16), nullable=False)
        batch.alter_column("sentiment_score", existing_type=sa.Float(), nullable=False)
    op.execute(f"CREATE VIEW v_ticker_sentiment_hourly AS {_ticker_sentiment_hourly(v0003, sql)}")
    op.execute(f"CREATE VIEW v_ticker_news AS {_TICKER_NEWS}")


def downgrade() -> None:
    v0003 = _revision_0003()
    sql = v0003._Sql(op.get_context().dialect.name)
    for name in reversed(_VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("news_item_tickers") as batch:
        batch.drop_column("target")
        batch.drop_column("sentiment_score")
        batch.drop_column("sentiment")
    for name in _VIEWS:
        op.execute(f"CREATE VIEW {name} AS {v0003.VIEWS[name](sql)}")
