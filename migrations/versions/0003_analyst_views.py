"""analyst views: sentiment per ticker hour and topic day, ticker news, alert history

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 21:10:00.000000

The views answer the questions analysts ask most in plain SQL, so nobody rewrites the joins
and the sentiment arithmetic by hand (docs/analyst-guide.md documents every column). Views
hold no data: they cost nothing to keep and always agree with the tables. The aggregate views
expose `score_sum` beside `mean_score`, so a mean over several rows is re-aggregated exactly
as `SUM(score_sum) / SUM(n_items)`.

Only a few expressions are spelled differently on PostgreSQL and SQLite (time truncation,
interval arithmetic, JSON access, string aggregation); `_Sql` holds both spellings. On
PostgreSQL the hour and day buckets are UTC whatever the session's TimeZone is.

A later migration that changes a column these views read must drop and recreate the view
(PostgreSQL refuses to alter the type of a column a view depends on).
"""

from __future__ import annotations

from collections.abc import Callable

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COUNTS = """
    COUNT(*) AS n_items,
    SUM(CASE WHEN i.sentiment = 'bearish' THEN 1 ELSE 0 END) AS n_bearish,
    SUM(CASE WHEN i.sentiment = 'neutral' THEN 1 ELSE 0 END) AS n_neutral,
    SUM(CASE WHEN i.sentiment = 'bullish' THEN 1 ELSE 0 END) AS n_bullish,
    CAST(SUM(CASE WHEN i.sentiment = 'bearish' THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
        / COUNT(*) AS bearish_share,
    SUM(i.sentiment_score) AS score_sum,
    AVG(i.sentiment_score) AS mean_score"""


class _Sql:
    """The expressions whose spelling differs between PostgreSQL and SQLite."""

    def __init__(self, dialect: str) -> None:
        self.postgresql = dialect == "postgresql"

    def truncate(self, unit: str, column: str) -> str:
        """`column` truncated to the UTC `unit` ('hour' or 'day')."""
        if self.postgresql:
            return f"(date_trunc('{unit}', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
        pattern = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}[unit]
        return f"strftime('{pattern}', {column})"

    def seconds_between(self, start: str, end: str) -> str:
        if self.postgresql:
            return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)"
        # julianday is a float of days: rounded to the millisecond it is exact enough.
        return f"round((julianday({end}) - julianday({start})) * 86400.0, 3)"

    def json_number(self, column: str, key: str) -> str:
        if self.postgresql:
            return f"CAST({column} ->> '{key}' AS DOUBLE PRECISION)"
        return f"CAST(json_extract({column}, '$.{key}') AS DOUBLE PRECISION)"

    def distinct_list(self, column: str) -> str:
        """The distinct values of `column`, comma-separated."""
        if self.postgresql:
            return f"string_agg(DISTINCT {column}, ',' ORDER BY {column})"
        return f"group_concat(DISTINCT {column})"


def _ticker_sentiment_hourly(sql: _Sql) -> str:
    return f"""
SELECT
    {sql.truncate("hour", "t.published_at")} AS hour_start,
    t.ticker AS ticker,{_COUNTS}
FROM news_item_tickers t
JOIN news_items i ON i.id = t.item_id
GROUP BY 1, 2"""  # noqa: S608 (constant fragments only)


def _topic_sentiment_daily(sql: _Sql) -> str:
    return f"""
SELECT
    {sql.truncate("day", "i.published_at")} AS day_start,
    i.topic AS topic,{_COUNTS}
FROM news_items i
GROUP BY 1, 2"""  # noqa: S608 (constant fragments only)


def _ticker_news(sql: _Sql) -> str:
    return """
SELECT
    t.ticker, i.id AS item_id, i.published_at, i.headline, i.source, i.url, i.topic,
    i.sentiment, i.sentiment_score, i.p_bearish, i.p_neutral, i.p_bullish, i.model_version
FROM news_item_tickers t
JOIN news_items i ON i.id = t.item_id"""


def _alert_history(sql: _Sql) -> str:
    def deliveries(status: str) -> str:
        return f"SUM(CASE WHEN d.status = '{status}' THEN 1 ELSE 0 END)"

    return f"""
SELECT
    a.id AS alert_id, a.rule, a.dimension, a.key, a.window_seconds, a.severity, a.state,
    a.started_at, a.resolved_at,
    {sql.seconds_between("a.started_at", "a.resolved_at")} AS duration_seconds,
    a.notifications,
    {sql.json_number("a.figures", "negative_share")} AS negative_share,
    {sql.json_number("a.figures", "baseline_share")} AS baseline_share,
    {sql.json_number("a.figures", "score")} AS score,
    COUNT(d.id) AS deliveries,
    {deliveries("sent")} AS deliveries_sent,
    {deliveries("pending")} AS deliveries_pending,
    {deliveries("failed")} AS deliveries_failed,
    CASE
        WHEN COUNT(d.id) = 0 THEN 'none'
        WHEN {deliveries("failed")} > 0 THEN 'failed'
        WHEN {deliveries("pending")} > 0 THEN 'pending'
        ELSE 'sent'
    END AS delivery_status,
    {sql.distinct_list("d.channel")} AS channels,
    MAX(d.sent_at) AS last_sent_at,
    (
        SELECT x.last_error FROM alert_deliveries x
        WHERE x.alert_id = a.id AND x.last_error IS NOT NULL
        ORDER BY x.id DESC LIMIT 1
    ) AS last_error
FROM alerts a
LEFT JOIN alert_deliveries d ON d.alert_id = a.id
GROUP BY a.id"""  # noqa: S608 (constant fragments only)


VIEWS: dict[str, Callable[[_Sql], str]] = {
    "v_ticker_sentiment_hourly": _ticker_sentiment_hourly,
    "v_topic_sentiment_daily": _topic_sentiment_daily,
    "v_ticker_news": _ticker_news,
    "v_alert_history": _alert_history,
}


def upgrade() -> None:
    sql = _Sql(op.get_context().dialect.name)
    for name, select in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {select(sql)}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
