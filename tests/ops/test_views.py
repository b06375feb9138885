"""The analyst views return the right figures, on both backends, in UTC whatever the session."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, text

from alerts.models import AlertDeliveryRow, AlertNoticeRow, AlertRow
from monitor.contract import IngestPolicy
from monitor.db.store import NewsStore
from monitor.pipeline_types import RawMessage
from monitor.processing import BatchProcessor
from tests.doubles import KeywordClassifier

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
BEARISH, BULLISH = -0.88, 0.88  # KeywordClassifier's scores


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 28, hour, minute, tzinfo=UTC)


def utc(value: Any) -> datetime:
    """A view's timestamp as aware UTC (SQLite returns text, PostgreSQL timestamptz)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC)


@pytest.fixture
def views(engine: Engine) -> Engine:
    news = [
        ("a", "$AAPL shares plunge after probe", at(9, 10)),
        ("b", "$AAPL beats estimates", at(9, 40)),
        ("c", "$AAPL and $MSFT hold talks", at(9, 50)),
        ("d", "$MSFT falls on downgrade", at(10, 5)),
        # 02:00 UTC is still the previous day in New York: buckets must stay UTC.
        ("e", "Fed holds rates", at(2)),
    ]
    messages = [
        RawMessage(json.dumps({"id": i, "published_at": t.isoformat(), "headline": h}).encode())
        for i, h, t in news
    ]
    store = NewsStore(engine, [timedelta(hours=1)])
    BatchProcessor(KeywordClassifier(), store, IngestPolicy(), clock=lambda: NOW).process(messages)
    return engine


def rows(conn: Connection, sql: str) -> list[Any]:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET TIME ZONE 'America/New_York'"))
    return list(conn.execute(text(sql)))


def test_ticker_sentiment_hourly(views: Engine) -> None:
    with views.connect() as conn:
        found = {
            (utc(r.hour_start), r.ticker): r
            for r in rows(conn, "SELECT * FROM v_ticker_sentiment_hourly")
        }
    assert set(found) == {(at(9), "AAPL"), (at(9), "MSFT"), (at(10), "MSFT")}
    aapl = found[at(9), "AAPL"]
    assert (aapl.n_items, aapl.n_bearish, aapl.n_neutral, aapl.n_bullish) == (3, 1, 1, 1)
    assert aapl.bearish_share == pytest.approx(1 / 3)
    assert aapl.score_sum == pytest.approx(BEARISH + BULLISH)
    assert aapl.mean_score == pytest.approx(0)
    msft = found[at(10), "MSFT"]
    assert (msft.n_items, msft.n_bearish, msft.bearish_share) == (1, 1, 1.0)
    assert msft.mean_score == pytest.approx(BEARISH)


def test_topic_sentiment_daily(views: Engine) -> None:
    with views.connect() as conn:
        (day,) = rows(conn, "SELECT * FROM v_topic_sentiment_daily")
    assert (utc(day.day_start), day.topic) == (at(0), "Stock Movement")
    assert (day.n_items, day.n_bearish, day.n_neutral, day.n_bullish) == (5, 2, 2, 1)
    assert day.bearish_share == pytest.approx(0.4)
    assert day.mean_score == pytest.approx((2 * BEARISH + BULLISH) / 5)


def test_ticker_news_lists_an_item_once_per_ticker(views: Engine) -> None:
    with views.connect() as conn:
        found = rows(conn, "SELECT ticker, item_id, sentiment FROM v_ticker_news")
    assert sorted(tuple(r) for r in found) == [
        ("AAPL", "a", "bearish"),
        ("AAPL", "b", "bullish"),
        ("AAPL", "c", "neutral"),
        ("MSFT", "c", "neutral"),
        ("MSFT", "d", "bearish"),
    ]


def add_alert(conn: Connection, name: str, *, resolved: datetime | None = None) -> int:
    figures = {"negative_share": 0.8, "baseline_share": 0.1, "score": 4.2}
    return conn.execute(
        insert(AlertRow).returning(AlertRow.id),
        {
            "fingerprint": name,
            "rule": "ticker-negative-spike",
            "dimension": "ticker",
            "key": name,
            "window_seconds": 300,
            "severity": "warning",
            "state": "resolved" if resolved else "firing",
            "started_at": at(10),
            "resolved_at": resolved,
            "episode_start": at(10),
            "anomalous_until": at(10, 5),
            "notified_severity": "warning",
            "calm": False,
            "figures": figures,
            "notifications": 1,
            "revision": 1,
            "updated_at": at(10),
        },
    ).scalar_one()


def add_delivery(
    conn: Connection, alert_id: int, channel: str, kind: str, status: str, error: str | None
) -> None:
    delivery_id = conn.execute(
        insert(AlertDeliveryRow).returning(AlertDeliveryRow.id),
        {
            "channel": channel,
            "group_key": f"group-{alert_id}",
            "kind": kind,
            "idempotency_key": f"{alert_id}-{channel}-{kind}",
            "payload": {},
            "status": status,
            "attempts": 1,
            "last_error": error,
            "created_at": at(10),
            "sent_at": at(10, 1) if status == "sent" else None,
        },
    ).scalar_one()
    conn.execute(
        insert(AlertNoticeRow),
        {
            "alert_id": alert_id,
            "channel": channel,
            "route": 0,
            "group_key": f"group-{alert_id}",
            "kind": kind,
            "reason": "test",
            "created_at": at(10),
            "delivery_id": delivery_id,
        },
    )


def test_alert_history_summarises_deliveries(engine: Engine) -> None:
    with engine.begin() as conn:
        done = add_alert(conn, "BA", resolved=at(10, 30))
        add_delivery(conn, done, "log", "firing", "sent", None)
        add_delivery(conn, done, "webhook", "firing", "failed", "attempt 8: HTTP 500")
        add_delivery(conn, done, "log", "resolved", "sent", None)
        quiet = add_alert(conn, "KO")
        waiting = add_alert(conn, "GS")
        add_delivery(conn, waiting, "log", "firing", "pending", None)
    with engine.connect() as conn:
        history = {r.alert_id: r for r in rows(conn, "SELECT * FROM v_alert_history")}

    first = history[done]
    assert (first.state, first.key) == ("resolved", "BA")
    assert first.duration_seconds == pytest.approx(1800)
    assert (first.negative_share, first.baseline_share, first.score) == (0.8, 0.1, 4.2)
    assert first.deliveries == 3 and first.deliveries_sent == 2
    assert first.deliveries_pending == 0 and first.deliveries_failed == 1
    assert first.delivery_status == "failed" and first.last_error == "attempt 8: HTTP 500"
    assert set(first.channels.split(",")) == {"log", "webhook"}
    assert utc(first.last_sent_at) == at(10, 1)

    assert history[quiet].delivery_status == "none" and history[quiet].deliveries == 0
    assert history[quiet].duration_seconds is None and history[quiet].deliveries_sent == 0
    assert history[waiting].delivery_status == "pending"
    assert utc(first.episode_start) == at(10) and utc(first.episode_end) == at(10, 5)
    assert first.suppressed_reason is None
