"""Fixtures of the reliability tests: their own PostgreSQL database, emptied around each use.

Why a database of their own (`finmon_reliability`, created on first use): these tests count
every row and window, and they stop PostgreSQL and Kafka on purpose, so they must neither see
rows another test run writes into `finmon_test` nor have them truncated in the middle of a
count; and the bad-input module keeps one worker's rows for all of its tests.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from harness.stack import PG_URL
from monitor.db.engine import make_engine, upgrade
from tests.alerts.conftest import tls_files, webhook  # noqa: F401  (the alert tests' receivers)
from tests.conftest import _truncate, require_stack
from tests.reliability.stack_control import create_login_role

RELIABILITY_PG_URL = os.environ.get(
    "FINMON_TEST_RELIABILITY_PG_URL",
    make_url(PG_URL).set(database="finmon_reliability").render_as_string(hide_password=False),
)


def _create_database(url: str) -> None:
    """Create the database of `url` (through `PG_URL`'s server) unless it exists."""
    name = make_url(url).database
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not found:  # an identifier cannot be a bound parameter: quote it instead
                quoted = conn.dialect.identifier_preparer.quote(str(name))
                conn.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        admin.dispose()


def migrated_database(url: str) -> Iterator[Engine]:
    """For a session fixture: the database of `url`, created if missing and migrated to
    head (needs the stack); its engine is disposed at the end."""
    require_stack()
    _create_database(url)
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def emptied_around(engine: Engine) -> Iterator[Engine]:
    """For a test fixture: `engine`'s tables emptied before and after the test."""
    _truncate(engine)
    yield engine
    _truncate(engine)


@pytest.fixture(scope="session")
def reliability_engine_session() -> Iterator[Engine]:
    yield from migrated_database(RELIABILITY_PG_URL)


@pytest.fixture
def reliability_engine(reliability_engine_session: Engine) -> Iterator[Engine]:
    """The reliability database, empty at the start of the test and emptied after it."""
    yield from emptied_around(reliability_engine_session)


@dataclass(frozen=True)
class SecretDatabase:
    """A database URL whose password is a fresh random string, so a test can grep logs for
    it (the stack's own password, `finmon`, is also the name of everything)."""

    url: str
    password: str | None
    """None where no role could be created (needs root or sudo to `postgres`): then `url` is
    the plain reliability URL and there is no database password to look for."""


@pytest.fixture(scope="session")
def secret_database(reliability_engine_session: Engine) -> SecretDatabase:
    password = f"pw-{secrets.token_hex(12)}"
    if not create_login_role("finmon_secret_test", password):
        return SecretDatabase(RELIABILITY_PG_URL, None)
    url = make_url(RELIABILITY_PG_URL).set(username="finmon_secret_test", password=password)
    return SecretDatabase(url.render_as_string(hide_password=False), password)
