"""The stack the end-to-end phase runs on: its own benchmark database, and the broker."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, make_url, text

from harness.stack import KAFKA_BOOTSTRAP, port_open
from monitor.db.engine import make_engine, upgrade

DEFAULT_PG_URL = "postgresql+psycopg://finmon:finmon@127.0.0.1:5432/finmon_bench"


def prepare_database(url: str) -> Engine:
    """Create the benchmark database if needed, migrate it, and empty it.

    A database of its own (not `finmon_test`, which the test suite truncates after every
    test) so tests running meanwhile neither disturb the counts nor see the benchmark's rows.
    """
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = target.database
            if not name:
                raise ValueError(f"the benchmark's database URL names no database: {url}")
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                conn.execute(
                    text(f"CREATE DATABASE {conn.dialect.identifier_preparer.quote(name)}")
                )
    finally:
        admin.dispose()
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        tables = conn.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'alembic_version'"
            )
        ).all()
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
    return engine


def require_stack(pg_url: str) -> None:
    """Fail with the fix in the message when the broker or the database is not reachable."""
    pg = make_url(pg_url)
    kafka_host, _, kafka_port = KAFKA_BOOTSTRAP.rpartition(":")
    missing = [
        name
        for name, host, port in (
            ("PostgreSQL", pg.host or "127.0.0.1", pg.port or 5432),
            ("Kafka", kafka_host, int(kafka_port)),
        )
        if not port_open(host, port)
    ]
    if missing:
        raise SystemExit(
            f"{' and '.join(missing)} not reachable: start the stack with "
            "`bash scripts/stack.sh up` (or skip this phase with --skip e2e)"
        )
