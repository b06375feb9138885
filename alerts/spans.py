"""When each alert was anomalous, for drawing it over a trend chart (`finmon trends --plot`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, inspect, select

from alerts.models import AlertRow
from monitor.db.models import table

SPAN_COLUMNS = ["key", "rule", "severity", "start", "until", "detected"]


def load_alert_spans(
    engine: Engine, dimension: str, keys: Sequence[str], since: datetime | None = None
) -> pd.DataFrame:
    """Incidents on `keys` of `dimension` (`SPAN_COLUMNS`), oldest first; only those
    anomalous after `since`, if given: each with its episode in event time (the start of its
    first anomalous window to the end of its last) and when it was detected (processing
    time, which a replay puts long after). Empty when the database has no alerts table."""
    if not keys or not inspect(engine).has_table("alerts"):
        return pd.DataFrame(columns=SPAN_COLUMNS)
    a = table(AlertRow).c
    statement = select(
        a.key, a.rule, a.severity, a.episode_start, a.anomalous_until, a.started_at
    ).where(a.dimension == dimension, a.key.in_(list(keys)))
    if since is not None:
        statement = statement.where(a.anomalous_until > since)
    with engine.connect() as conn:
        rows = conn.execute(statement.order_by(a.episode_start)).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=SPAN_COLUMNS)
