"""Stories in the store: linking across batches, exactly-once novelty, concurrent workers."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select, text

from harness.stack import PG_URL
from monitor.contract import IngestPolicy
from monitor.db.engine import alembic_config, make_engine, upgrade
from monitor.db.models import NewsItemBandRow, NewsItemRow, TrendWindowRow
from monitor.db.store import NewsStore
from monitor.novelty import Linker, NoveltyPolicy, StoryItem
from monitor.pipeline_types import Origin, RawMessage
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


def _templated(rng: random.Random, n: int) -> list[tuple[str, str, int]]:
    """(id, headline, hours before NOW): look-alike headlines from a few templates, so many
    items share bands without being copies, and real copies with outlet suffixes."""
    names = ["Acme", "Globex", "Initech", "Umbrella"]
    verbs = ["rises", "falls", "beats estimates", "misses estimates", "cuts guidance"]
    out = []
    for k in range(n):
        if out and rng.random() < 0.3:
            headline = f"{rng.choice(out)[1].split(' - ')[0]} - Outlet{k}"
        else:
            headline = f"{rng.choice(names)} shares {rng.choice(verbs)} on {rng.choice(names)} deal"
        out.append((f"t{k}", headline, rng.randrange(0, 60)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bounded_sql_candidates_link_as_the_full_pure_pool_does(
    engine: Engine, classifier: KeywordClassifier, seed: int
) -> None:
    """The store fetches each item's best `max_candidates` stored candidates within its
    own horizon; the pure linker given every indexed item must choose the same stories."""
    policy = NoveltyPolicy(horizon=timedelta(hours=24), max_candidates=3)
    store = NewsStore(engine, SIZES, Linker(policy))
    proc = BatchProcessor(classifier, store, IngestPolicy(), clock=lambda: NOW)
    rng = random.Random(seed)
    items = _templated(rng, 90)
    reference, indexed = Linker(policy), []
    for start in range(0, len(items), 30):
        batch = items[start : start + 30]
        proc.process(
            [
                RawMessage(
                    json.dumps(
                        {
                            "id": i,
                            "headline": h,
                            "published_at": (NOW - timedelta(hours=age)).isoformat(),
                        }
                    ).encode(),
                    Origin("news.raw", 0, n),
                )
                for n, (i, h, age) in enumerate(batch)
            ]
        )
        new = [StoryItem(i, NOW - timedelta(hours=age), h) for i, h, age in batch]
        for item, link in zip(new, reference.link(new, indexed), strict=True):
            assert stories(engine)[item.item_id] == (link.story_id, link.is_novel), item
            if link.bands:
                indexed.append(
                    StoryItem(item.item_id, item.published_at, item.headline, (), link.story_id)
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
