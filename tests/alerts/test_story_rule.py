"""A rule with count = "stories" sees a syndicated burst as one story; the same rule counting
items fires on it (the real `NewsStore` with a story linker, both backends)."""

from __future__ import annotations

import string
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from alerts.service import AlertService
from monitor.contract import NewsItem
from monitor.db.store import NewsStore, StoreResult
from monitor.model.interface import Classification
from monitor.novelty import Linker
from monitor.pipeline_types import ClassifiedItem
from monitor.settings import Settings
from tests.alerts.conftest import SCORES, T0

FIVE = timedelta(minutes=5)
RULE = {
    "dimension": "ticker",
    "window": "5m",
    "min_volume": 5,
    "min_bearish": 3,
    "min_share_increase": 0.3,
}


def settings(tmp_path: Path) -> Settings:
    return Settings(
        config_dir=tmp_path,
        windows={"sizes": ["5m"]},
        alerts={
            "rules": [
                {"name": "acme-items", "count": "items", **RULE},
                {"name": "acme-stories", "count": "stories", **RULE},
            ]
        },
    )


class StoryFeed:
    def __init__(self, engine: Engine) -> None:
        self.store = NewsStore(engine, [FIVE], Linker())
        self.n = 0

    def add(self, at: datetime, items: list[tuple[str, str]]) -> StoreResult:
        batch = []
        for headline, sentiment in items:
            self.n += 1
            news = NewsItem(f"n{self.n}", at, headline, tickers=("ACME",), content_hash=str(self.n))
            verdict = Classification("Stock", 0.9, sentiment, SCORES[sentiment], {}, "t")
            batch.append(ClassifiedItem(news, verdict))
        return self.store.store(batch, now=at)


def test_a_syndicated_burst_is_one_story(engine: Engine, tmp_path: Path) -> None:
    service = AlertService.from_settings(settings(tmp_path), engine)
    feed = StoryFeed(engine)
    words = iter(f"{a}{b}" for a in string.ascii_lowercase for b in string.ascii_lowercase)
    for i in range(12):  # a calm hour of distinct stories
        at = T0 + i * FIVE
        calm = [
            (f"ACME {next(words)} {next(words)} {next(words)} update", s)
            for s in ("neutral", "bullish", "neutral", "bearish", "neutral")
        ]
        service.evaluate(feed.add(at, calm).windows.keys(), at + timedelta(minutes=4))
    burst_at = T0 + 12 * FIVE
    events = []
    for minute, outlet in enumerate(["Reuters", "Bloomberg", "CNBC", "MarketWatch"]):
        copies = [
            (f"ACME plunges after fraud probe opens - {outlet} desk {c}", "bearish")
            for c in "abcdefgh"
        ]
        stored = feed.add(burst_at + timedelta(minutes=minute), copies)
        events += service.evaluate(stored.windows.keys(), burst_at + timedelta(minutes=minute))
    assert {e.rule for e in events} == {"acme-items"}
    [window] = [c for k, c in stored.windows.items() if k.dimension == "ticker"]
    assert (window.n_total, window.n_novel) == (8, 0)  # the last batch: copies only
