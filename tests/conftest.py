"""Shared fixtures: databases (SQLite always, PostgreSQL when the stack runs), test doubles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, text

from harness.stack import PG_URL, port_open
from monitor.db.engine import make_engine, upgrade
from tests.doubles import KeywordClassifier

REPO = Path(__file__).resolve().parents[1]
"""The checkout the tests run from (its docs and config.toml are under test too)."""
SHARED_DATA = REPO.parent / "shared" / "data"
# A shared 2-core machine is slow at times: property tests judge behaviour, not speed.
settings.register_profile("finmon", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("finmon")
# A developer's shell may point finmon at their own database (FINMON_DATABASE__URL, as
# `scripts/stack.sh env` prints it), and the environment overrides a config file: tests
# name their databases themselves, and must never replay a sample into that one.
os.environ.pop("FINMON_DATABASE__URL", None)

TABLES = (
    "alert_notices",
    "alert_deliveries",
    "alerts",
    "news_item_tickers",
    "news_item_bands",
    "trend_windows",
    "news_items",
    "ingest_seen",
)


def require_stack() -> None:
    """Skip (or, in CI, fail) when the local Kafka + PostgreSQL stack is not running."""
    missing = [
        name
        for name, port in (("PostgreSQL", 5432), ("Kafka", 9092))
        if not port_open("127.0.0.1", port)
    ]
    if missing:
        message = f"{' and '.join(missing)} not running: start it with `bash scripts/stack.sh up`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def classifier() -> KeywordClassifier:
    return KeywordClassifier()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'finmon.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        present = set(
            conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
        )
        names = [t for t in TABLES if t in present]
        if names:
            conn.execute(text(f"TRUNCATE {', '.join(names)} CASCADE"))


@pytest.fixture(scope="session")
def pg_engine_session() -> Iterator[Engine]:
    require_stack()
    upgrade(PG_URL)
    engine = make_engine(PG_URL)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_engine_session: Engine) -> Iterator[Engine]:
    """PostgreSQL at the migrated head; every table emptied after the test."""
    yield pg_engine_session
    _truncate(pg_engine_session)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Both backends: the same code must behave the same on each."""
    return request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")


def needs_shared_data() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not SHARED_DATA.is_dir(), reason=f"labelled datasets not found at {SHARED_DATA}"
    )
