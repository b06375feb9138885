"""When each alert was anomalous, for drawing it over a trend chart (`finmon trends --plot`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, inspect, select

from alerts.models import AlertRow
from monitor.db.models import table

SPAN_COLUMNS = ["key", "rule", "severity", "start", "until"]


def load_alert_spans(
    engine: Engine, dimension: str, keys: Sequence[str], since: datetime | None = None
) -> pd.DataFrame:
    """Alerts on `keys` of `dimension`, each with the span it was anomalous in
    (`SPAN_COLUMNS`), oldest first; only those anomalous after `since`, if given.

    The span is in event time: from when it fired (or the start of its newest anomalous
    window, if earlier: a replay fires alerts long after the items were published) to the
    end of its newest anomalous window. Empty when the database has no alerts table."""
    if not keys or not inspect(engine).has_table("alerts"):
        return pd.DataFrame(columns=SPAN_COLUMNS)
    a = table(AlertRow).c
    statement = select(
        a.key, a.rule, a.severity, a.window_seconds, a.started_at, a.anomalous_until
    ).where(a.dimension == dimension, a.key.in_(list(keys)))
    if since is not None:
        statement = statement.where(a.anomalous_until > since)
    with engine.connect() as conn:
        rows = conn.execute(statement.order_by(a.started_at)).all()
    spans = [
        (key, rule, severity, min(started, until - timedelta(seconds=seconds)), until)
        for key, rule, severity, seconds, started, until in rows
    ]
    return pd.DataFrame(spans, columns=SPAN_COLUMNS)
