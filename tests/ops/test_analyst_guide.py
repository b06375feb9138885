"""Every SQL example in docs/analyst-guide.md runs on PostgreSQL and finds rows in a sample.

The sample is replayed through the real processing path (with the keyword classifier), so
the queries meet the data they were written for: items, tickers, windows, alerts and their
deliveries. A query that silently matches nothing (a misspelt value, a wrong join) fails too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from harness.stack import PG_URL
from tests.conftest import REPO, _truncate
from tests.ops.seeding import replay_sample, write_config

pytestmark = pytest.mark.stack

GUIDE = REPO / "docs" / "analyst-guide.md"
_HEADING_OR_SQL = re.compile(r"^#+ (?P<heading>.+?)$|^```sql\n(?P<sql>.*?)^```", re.M | re.S)


def guide_queries(path: Path = GUIDE) -> list[tuple[str, str]]:
    """(the heading above it, the SQL) for every fenced ```sql block of the guide."""
    queries, heading = [], ""
    for match in _HEADING_OR_SQL.finditer(path.read_text(encoding="utf-8")):
        if match["heading"]:
            heading = match["heading"]
        else:
            queries.append((heading, match["sql"]))
    return queries


QUERIES = guide_queries()


@pytest.fixture(scope="module")
def sample_in_postgresql(
    pg_engine_session: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    # The sample ends on the hour, so its episode meets the windows at the same phase on
    # every run and the queries meet the same data (a run that depends on the minute it
    # starts hides a failure for the other minutes).
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    two_tickers = {
        "id": "guide-two-tickers",
        "published_at": (end - timedelta(minutes=30)).isoformat(),
        "headline": "$AAPL and $MSFT sign a cloud partnership",
    }
    config = write_config(tmp_path_factory.mktemp("guide"), PG_URL)
    # the sample stands for a live feed: its incidents notify, they are not history
    config.write_text(config.read_text() + '[alerts]\nnotify_max_age = "7d"\n')
    _, summary = replay_sample(config, end, extra=[two_tickers])
    assert summary.incidents, "the sample's negative episode should have opened incidents"
    with pg_engine_session.begin() as conn:  # a channel that gave up, for the failure query
        conn.execute(
            text(
                "UPDATE alert_deliveries SET status = 'failed', last_error = 'attempt 8: 503' "
                "WHERE id = (SELECT min(id) FROM alert_deliveries)"
            )
        )
    yield pg_engine_session
    _truncate(pg_engine_session)


def test_the_guide_has_a_dozen_example_queries() -> None:
    assert len(QUERIES) >= 12


@pytest.mark.parametrize(("heading", "sql"), QUERIES, ids=[h for h, _ in QUERIES])
def test_guide_query_runs_on_postgresql(
    sample_in_postgresql: Engine, heading: str, sql: str
) -> None:
    with sample_in_postgresql.connect() as conn:
        rows = conn.execute(text(sql)).all()
    assert rows, f"guide query {heading!r} found nothing in the sample"
