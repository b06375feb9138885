"""story novelty and feed intake: story_id/is_novel, LSH bands, novel counts, seen ids

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02 07:55:00.000000

Items stored before this migration keep NULL `story_id` / `is_novel` (their stories were
never computed), and existing windows start with zero novel counts: a story rule reads only
windows counted after the upgrade. The new window columns have a server default of 0, so
adding them rewrites nothing on PostgreSQL 11+ (a constant default is catalogue-only).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.db.models

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

_NOVEL_COUNTS = ("n_novel", "n_novel_bearish", "n_novel_neutral", "n_novel_bullish")


def upgrade() -> None:
    with op.batch_alter_table("news_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("story_id", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("is_novel", sa.Boolean(), nullable=True))
        batch_op.create_index(batch_op.f("ix_news_items_story_id"), ["story_id"], unique=False)
    with op.batch_alter_table("trend_windows", schema=None) as batch_op:
        for name in _NOVEL_COUNTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("novel_score_sum", sa.Float(), server_default="0", nullable=False)
        )
    op.create_table(
        "news_item_bands",
        sa.Column("band", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.String(length=256), nullable=False),
        sa.Column("published_at", monitor.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("band", "item_id", name=op.f("pk_news_item_bands")),
    )
    with op.batch_alter_table("news_item_bands", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_news_item_bands_published_at"), ["published_at"], unique=False
        )
    op.create_table(
        "ingest_seen",
        sa.Column("feed", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=256), nullable=False),
        sa.Column("seen_at", monitor.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("feed", "item_id", name=op.f("pk_ingest_seen")),
    )
    with op.batch_alter_table("ingest_seen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_seen_seen_at"), ["seen_at"], unique=False)
    for name, select in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {select}")


_STORIES = """
SELECT
    s.story_id, f.headline AS first_headline, f.source AS first_source,
    MIN(s.published_at) AS first_published_at, MAX(s.published_at) AS last_published_at,
    COUNT(*) AS n_items, COUNT(DISTINCT s.source) AS n_sources,
    f.sentiment AS sentiment, f.topic AS topic
FROM news_items s
JOIN news_items f ON f.id = s.story_id
GROUP BY s.story_id, f.headline, f.source, f.sentiment, f.topic"""

_STORY_COPIES = """
SELECT
    s.story_id, s.id AS item_id, s.is_novel, s.published_at, s.received_at, s.source,
    s.url, s.headline, f.headline AS story_headline, s.sentiment, s.sentiment_score
FROM news_items s
JOIN news_items f ON f.id = s.story_id"""

VIEWS = {"v_stories": _STORIES, "v_story_copies": _STORY_COPIES}
"""One row per story (its first item's headline, how many copies from how many sources),
and one row per copy beside its story's first headline."""


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_table("ingest_seen")
    with op.batch_alter_table("news_item_bands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_news_item_bands_published_at"))
    op.drop_table("news_item_bands")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 has it): batch mode would rebuild
    # news_items on SQLite, which the 0003 views that read it forbid.
    for name in (*_NOVEL_COUNTS, "novel_score_sum"):
        op.execute(f"ALTER TABLE trend_windows DROP COLUMN {name}")
    op.drop_index("ix_news_items_story_id", table_name="news_items")
    op.execute("ALTER TABLE news_items DROP COLUMN is_novel")
    op.execute("ALTER TABLE news_items DROP COLUMN story_id")
