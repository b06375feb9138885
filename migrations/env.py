"""Alembic environment: runs finmon's migrations online against the configured database.

On PostgreSQL each migration runs with a lock timeout, so a migration that cannot get its
locks (a long analyst query, a busy worker) fails fast instead of queueing every writer
behind it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool, text

from monitor.db.metadata import target_metadata

config = context.config
LOCK_TIMEOUT = "5s"
STATEMENT_TIMEOUT = "10min"


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection") or engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        is_sqlite = connection.dialect.name == "sqlite"
        if not is_sqlite:
            connection.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
            connection.execute(text(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'"))
            # session settings outlive this commit; without it alembic would join the
            # implicit transaction and never commit the migration
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
