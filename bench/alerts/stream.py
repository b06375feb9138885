"""The labelled stream: background news, noise, injected episodes, and the classifier
double that returns the labels the generator set."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.model.interface import Classification, ModelInput
from monitor.pipeline_types import Origin, RawMessage

HOURS = 6
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
END = START + timedelta(hours=HOURS)
SECTORS: dict[str, tuple[str, list[str]]] = {
    "tech": ("Stock Movement", ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META"]),
    "banks": ("Financials", ["JPM", "GS", "BAC", "C", "WFC", "MS"]),
    "energy": ("Energy | Oil", ["XOM", "CVX", "COP", "SLB", "OXY", "EOG"]),
    "health": ("Stock Commentary", ["PFE", "MRK", "JNJ", "ABBV", "LLY", "BMY"]),
}
TICKERS = [t for _, tickers in SECTORS.values() for t in tickers]
TOPICS = ["Stock Movement", "Earnings", "M&A | Investments", "Macro", "Markets", "Analyst Update"]
BACKGROUND = {"bearish": 0.15, "neutral": 0.55, "bullish": 0.30}
BATCH = 128
STEP_S = 5.0
"""Live deliveries advance the simulated clock in steps of this many seconds."""
BACKLOG_RATE = 300.0
"""Items per second a backlog drains at (about the worker's speed on 2 CPU cores)."""


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    at: datetime
    tickers: tuple[str, ...]
    topic: str
    sentiment: str
    story: str = ""
    """The headline of a story several outlets carry (each copy with its outlet's suffix);
    empty for an item that is a story of its own."""

    @property
    def headline(self) -> str:
        if self.story:
            return f"{self.story} - Outlet{self.id}"
        return f"{_cashtags(self.tickers)} news {self.id}".strip()

    def message(self, partition: int) -> RawMessage:
        doc = {
            "id": self.id,
            "published_at": self.at.isoformat(),
            "headline": self.headline,
            "tickers": list(self.tickers),
        }
        return RawMessage(json.dumps(doc).encode(), Origin("bench", partition, 0))


@dataclass(frozen=True, slots=True)
class Episode:
    name: str
    start: datetime
    end: datetime
    tickers: frozenset[str]
    topics: frozenset[str]
    target: tuple[str, str]
    """The (rule, key) that must detect it."""


@dataclass(slots=True)
class Stream:
    items: list[Item] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)

    def add(
        self, at: datetime, tickers: Sequence[str], topic: str, sentiment: str, story: str = ""
    ) -> None:
        self.items.append(Item(f"i{len(self.items)}", at, tuple(tickers), topic, sentiment, story))


def _cashtags(tickers: Sequence[str]) -> str:
    return " ".join("$" + t for t in tickers)


def _sentiment(rng: random.Random, mix: dict[str, float]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def generate(seed: int) -> Stream:
    """The labelled stream: background, noise and four episodes."""
    rng = random.Random(seed)
    stream = Stream()
    weights = [1.0 / (1 + i % 6) for i in range(len(TICKERS))]  # a few busy names per sector
    sector_of = {t: s for s, (_, tickers) in SECTORS.items() for t in tickers}
    at = START
    while at < END:  # about 7 items a minute: ~2,500 in 6 h
        at += timedelta(seconds=rng.expovariate(7 / 60))
        if rng.random() < 0.15:
            stream.add(at, (), rng.choice(["Macro", "Markets"]), _sentiment(rng, BACKGROUND))
            continue
        ticker = rng.choices(TICKERS, weights=weights)[0]
        sector_topic = SECTORS[sector_of[ticker]][0]
        topic = sector_topic if rng.random() < 0.4 else rng.choice(TOPICS)
        stream.add(at, (ticker,), topic, _sentiment(rng, BACKGROUND))
    # noise that must not fire: an ordinary flurry on one name, a few bearish on a quiet one
    for k in range(18):
        stream.add(
            START + timedelta(minutes=50, seconds=15 * k),
            ("NVDA",),
            "Earnings",
            _sentiment(rng, BACKGROUND),
        )
    for k in range(3):
        stream.add(
            START + timedelta(minutes=200, seconds=40 * k), ("EOG",), "Energy | Oil", "bearish"
        )
    # one bearish story that 12 outlets carry within 10 minutes: one piece of news, not a spike
    # of opinion (counted by stories it is one bearish item)
    for k in range(12):
        stream.add(
            START + timedelta(minutes=130, seconds=50 * k + rng.uniform(0, 40)),
            ("MSFT",),
            "Stock Movement",
            "bearish",
            "$MSFT recalls Surface laptops over battery fault",
        )

    def episode(
        name: str,
        start_min: float,
        minutes: float,
        target: tuple[str, str],
        items: list[tuple[tuple[str, ...], str]],
        carriers: int = 1,
    ) -> None:
        """`items` bearish items in `minutes`; with `carriers` > 1, each consecutive run of
        that many is one story carried by as many outlets (a real spike is syndicated too)."""
        start = START + timedelta(minutes=start_min)
        for k, (tickers, topic) in enumerate(items):
            offset = timedelta(minutes=minutes) * (k + rng.random()) / len(items)
            story = (
                f"{_cashtags(tickers)} {name.split(':')[0]} story s{k // carriers}"
                if carriers > 1
                else ""
            )
            stream.add(start + offset, tickers, topic, "bearish", story)
        stream.episodes.append(
            Episode(
                name,
                start,
                start + timedelta(minutes=minutes),
                frozenset(t for tickers, _ in items for t in tickers),
                frozenset(topic for _, topic in items),
                target,
            )
        )

    episode(
        "ticker-only: 40 bearish on AAPL in 15 min, 20 stories of 2 outlets",
        90,
        15,
        ("ticker-negative-spike", "AAPL"),
        [(("AAPL",), "Stock Movement")] * 40,
        carriers=2,
    )
    banks = SECTORS["banks"][1]
    episode(
        "sector-wide: 45 bearish on 6 banks in 30 min",
        165,
        30,
        ("topic-negative-spike", "Financials"),
        [((banks[k % 6],), "Financials") for k in range(45)],
    )
    episode(
        "market-wide: 90 bearish on every name in 15 min",
        240,
        15,
        ("market-negative-spike", "*"),
        [((TICKERS[k % len(TICKERS)],), TOPICS[k % len(TOPICS)]) for k in range(90)],
    )
    build_up = [
        ((("PFE",), "Stock Commentary"), minute)
        for minute in range(60)
        for _ in range(minute // 12)
    ]  # 0, 1, ... 4 bearish a minute
    start = START + timedelta(minutes=300)
    for (tickers, topic), minute in build_up:
        stream.add(
            start + timedelta(minutes=minute, seconds=rng.uniform(0, 59)), tickers, topic, "bearish"
        )
    stream.episodes.append(
        Episode(
            "slow build-up: PFE, 0 to 4 bearish a minute over 1 h",
            start,
            start + timedelta(minutes=60),
            frozenset({"PFE"}),
            frozenset({"Stock Commentary"}),
            ("ticker-negative-spike", "PFE"),
        )
    )
    stream.items.sort(key=lambda item: item.at)
    return stream


class LabelClassifier:
    """The classifier double: returns the labels the generator set for each headline."""

    model_version = "bench-labels-1"
    accepts_targets = False

    def __init__(self, items: Sequence[Item]) -> None:
        self.labels = {item.headline: (item.topic, item.sentiment) for item in items}

    def ready(self) -> bool:
        return True

    def classify(self, inputs: Sequence[ModelInput]) -> list[Classification]:
        out = []
        for model_input in inputs:
            topic, sentiment = self.labels[model_input.headline]
            score = {"bearish": -0.8, "neutral": 0.0, "bullish": 0.7}[sentiment]
            out.append(
                Classification(topic, 0.9, sentiment, score, {sentiment: 0.9}, self.model_version)
            )
        return out
