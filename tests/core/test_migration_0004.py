"""Migration 0004 carries ticker rows stored before it forward: they counted the item's own
sentiment, and the backfilled columns say so; it also downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from monitor.db.engine import alembic_config, make_engine, upgrade


def test_rows_stored_before_0004_get_their_items_sentiment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0003")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO news_items (id, published_at, received_at, headline, body_truncated,"
                " tickers, extra, content_hash, topic, topic_confidence, sentiment,"
                " sentiment_score, p_bearish, p_neutral, p_bullish, model_version) VALUES"
                " ('n1', '2026-12-01 10:00:00', '2026-12-01 10:00:01', '$BA slides', 0,"
                " '[\"BA\"]', '{}', 'h', 'Stock Movement', 0.9, 'bearish', -0.8, 0.85, 0.1,"
                " 0.05, 'finmon-minilm-v1+x')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO news_item_tickers (item_id, ticker, published_at)"
                " VALUES ('n1', 'BA', '2026-12-01 10:00:00')"
            )
        )
    upgrade(url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT sentiment, sentiment_score, target FROM news_item_tickers")
        ).one()
        view = conn.execute(
            text(
                "SELECT ticker, n_bearish, ticker_sentiment FROM v_ticker_sentiment_hourly"
                " JOIN v_ticker_news USING (ticker)"
            )
        ).one()
    assert tuple(row) == ("bearish", -0.8, None)
    assert tuple(view) == ("BA", 1, "bearish")
    command.downgrade(alembic_config(url), "0003")
    with engine.connect() as conn:
        columns = {r[1] for r in conn.execute(text("PRAGMA table_info(news_item_tickers)"))}
        assert columns == {"item_id", "ticker", "published_at"}
        assert conn.execute(text("SELECT COUNT(*) FROM v_ticker_news")).scalar() == 1
    engine.dispose()
