"""`/ready`: each dependency's check, and ready only when all of them pass."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from pipelines.web import ReadinessChecks, database_ok, readiness


def app(*, started: bool = True, stopping: bool = False, rebalancing: bool = False) -> Any:
    consumer = SimpleNamespace(started=started, should_stop=stopping)
    return SimpleNamespace(consumer=consumer, rebalancing=rebalancing)


@pytest.mark.parametrize(
    ("worker", "database", "model", "expected"),
    [
        (app(), True, True, {"kafka": True, "database": True, "model": True}),
        (app(), True, False, {"kafka": True, "database": True, "model": False}),
        (app(), False, True, {"kafka": True, "database": False, "model": True}),
        (app(started=False), True, True, {"kafka": False, "database": True, "model": True}),
        (app(stopping=True), True, True, {"kafka": False, "database": True, "model": True}),
        (app(rebalancing=True), True, True, {"kafka": False, "database": True, "model": True}),
    ],
)
async def test_each_check_is_reported(
    worker: Any, database: bool, model: bool, expected: dict[str, bool]
) -> None:
    checks = ReadinessChecks(database=lambda: database, model=lambda: model)
    assert await readiness(worker, checks) == expected


async def test_the_model_check_is_asked_at_every_call() -> None:
    states = iter([True, False, True])
    checks = ReadinessChecks(database=lambda: True, model=lambda: next(states))
    seen = [(await readiness(app(), checks))["model"] for _ in range(3)]
    assert seen == [True, False, True]


def test_database_ok_makes_a_round_trip(sqlite_engine: Engine) -> None:
    assert database_ok(sqlite_engine)
    unreachable = create_engine("postgresql+psycopg://nobody:x@127.0.0.1:1/none")
    assert not database_ok(unreachable)
