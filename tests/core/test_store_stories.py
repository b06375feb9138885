"""Stories in the store: linking across batches, exactly-once novelty, concurrent workers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select, text

from harness.stack import PG_URL
from monitor.contract import IngestPolicy
from monitor.db.engine import alembic_config, make_engine, upgrade
from monitor.db.models import NewsItemBandRow, NewsItemRow, TrendWindowRow
from monitor.db.store import NewsStore
from monitor.novelty import Linker
from monitor.processing import BatchProcessor
from tests.core.test_store import NOW, SIZES, count, message
from tests.doubles import KeywordClassifier

STORY = "$BA tumbles after FAA grounds 737 MAX fleet"


def processor(engine: Engine, classifier: KeywordClassifier) -> BatchProcessor:
    store = NewsStore(engine, SIZES, Linker())
    return BatchProcessor(classifier, store, IngestPolicy(), clock=lambda: NOW)


def ticker_hour(engine: Engine) -> tuple[int, int, int, int]:
    """(n_total, n_bearish, n_novel, n_novel_bearish) of BA's hour window."""
    t = TrendWindowRow
    with engine.connect() as conn:
        row = conn.execute(
            select(t.n_total, t.n_bearish, t.n_novel, t.n_novel_bearish).where(
                t.dimension == "ticker", t.key == "BA", t.window_seconds == 3600
            )
        ).one()
    return tuple(row)  # type: ignore[return-value]


def stories(engine: Engine) -> dict[str, tuple[str, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(select(NewsItemRow.id, NewsItemRow.story_id, NewsItemRow.is_novel))
        return {r.id: (r.story_id, r.is_novel) for r in rows}


def test_five_outlets_one_story_across_batches(
    engine: Engine, classifier: KeywordClassifier
) -> None:
    proc = processor(engine, classifier)
    outlets = ["Reuters", "Bloomberg", "CNBC", "MarketWatch", "AP"]
    proc.process([message("r", f"{STORY} - Reuters", 1), message("b", f"{STORY} | Bloomberg", 2)])
    proc.process([message(o[0].lower() + "2", f"UPDATE 1-{STORY} - {o}", 3) for o in outlets[2:]])
    proc.process([message("other", "$BA tumbles as union strike widens", 9)])
    assert ticker_hour(engine) == (6, 6, 2, 2)
    found = stories(engine)
    assert {found[i][0] for i in ("r", "b", "c2", "m2", "a2")} == {"r"}
    assert found["r"][1] and found["other"] == ("other", True)
    with engine.connect() as conn:
        assert (
            conn.scalar(
                select(text("n_items")).select_from(text("v_stories")).where(text("story_id = 'r'"))
            )
            == 5
        )


def test_redelivery_changes_no_story_count(engine: Engine, classifier: KeywordClassifier) -> None:
    proc = processor(engine, classifier)
    batch = [message(f"id-{n}", f"{STORY} - Outlet{n}", n) for n in range(5)]
    proc.process(batch)
    before = ticker_hour(engine), count(engine, NewsItemBandRow), stories(engine)
    proc.process([*reversed(batch), message("id-9", f"{STORY} (AP)", 9)])
    assert ticker_hour(engine) == (before[0][0] + 1, before[0][1] + 1, 1, 1)
    found = stories(engine)
    assert {k: v for k, v in found.items() if k != "id-9"} == before[2]
    assert found["id-9"] == ("id-0", False)


def test_concurrent_workers_store_one_novel_item_per_story(
    pg_engine: Engine, classifier: KeywordClassifier
) -> None:
    """Eight workers store copies of one story at once: the advisory lock makes them link
    one after the other, so exactly one copy is novel."""
    batches = [
        [message(f"w{w}-{n}", f"{STORY} - Outlet{w}{n}", n) for n in range(4)] for w in range(8)
    ]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda b: processor(pg_engine, classifier).process(b), batches))
    assert ticker_hour(pg_engine)[:3] == (32, 32, 1)
    assert len({story for story, _ in stories(pg_engine).values()}) == 1


def test_without_a_linker_every_item_counts_as_a_story(
    engine: Engine, classifier: KeywordClassifier
) -> None:
    store = NewsStore(engine, SIZES)
    proc = BatchProcessor(classifier, store, IngestPolicy(), clock=lambda: NOW)
    proc.process([message(f"id-{n}", f"{STORY} - Outlet{n}", n) for n in range(3)])
    assert ticker_hour(engine) == (3, 3, 3, 3)
    assert set(stories(engine).values()) == {(None, None)}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0006_downgrades_and_upgrades(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        request.getfixturevalue("pg_engine")
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path}/m.sqlite3"
        upgrade(url)
    command.downgrade(alembic_config(url), "0003")
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert not {"news_item_bands", "ingest_seen"} & tables
        assert "story_id" not in {c["name"] for c in inspect(engine).get_columns("news_items")}
        upgrade(url)
        engine.dispose()
        assert {"news_item_bands", "ingest_seen"} <= set(inspect(engine).get_table_names())
    finally:
        upgrade(url)
        engine.dispose()
