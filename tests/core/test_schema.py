"""The models and the migrations agree, on both backends (a migration cannot be forgotten)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from monitor.db.metadata import target_metadata


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, target_metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"
