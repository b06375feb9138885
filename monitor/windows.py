"""Trend windows: pure arithmetic, no I/O.

A window of size S starting at T covers [T, T+S) in UTC, aligned to the Unix epoch, so every
worker computes the same boundaries with no coordination. An item counts in one window per
size and per dimension: `all` (key `*`), its `topic`, and each of its `tickers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.model.interface import SENTIMENT_LABELS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ALL_KEY = "*"
DIMENSIONS = ("all", "topic", "ticker")


def window_start(ts: datetime, size: timedelta) -> datetime:
    """The start of the size-`size` window holding `ts` (which must be timezone-aware)."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    step = int(size.total_seconds())
    offset = int((ts - _EPOCH).total_seconds() // step) * step
    return _EPOCH + timedelta(seconds=offset)


@dataclass(frozen=True, slots=True, order=True)
class WindowKey:
    """Identifies one trend window row."""

    window_seconds: int
    window_start: datetime
    dimension: str
    key: str

    @property
    def window_end(self) -> datetime:
        return self.window_start + timedelta(seconds=self.window_seconds)


@dataclass(slots=True)
class WindowCounts:
    """Counts and score sum of one window; added together when items arrive."""

    n_bearish: int = 0
    n_neutral: int = 0
    n_bullish: int = 0
    score_sum: float = 0.0

    @property
    def n_total(self) -> int:
        return self.n_bearish + self.n_neutral + self.n_bullish

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.n_total if self.n_total else 0.0

    def merge(self, other: WindowCounts) -> None:
        self.n_bearish += other.n_bearish
        self.n_neutral += other.n_neutral
        self.n_bullish += other.n_bullish
        self.score_sum += other.score_sum

    def add(self, sentiment: str, score: float) -> None:
        if sentiment not in SENTIMENT_LABELS:
            raise ValueError(f"unknown sentiment label {sentiment!r}")
        attr = f"n_{sentiment}"
        setattr(self, attr, getattr(self, attr) + 1)
        self.score_sum += score


@dataclass(frozen=True, slots=True)
class Observation:
    """What windowing needs from one classified item."""

    published_at: datetime
    topic: str
    tickers: tuple[str, ...]
    sentiment: str
    score: float


def keys_for(obs: Observation, sizes: Iterable[timedelta]) -> list[WindowKey]:
    """Every window key that `obs` counts in."""
    pairs = [("all", ALL_KEY), ("topic", obs.topic), *(("ticker", t) for t in obs.tickers)]
    keys = []
    for size in sizes:
        start = window_start(obs.published_at, size)
        seconds = int(size.total_seconds())
        keys.extend(WindowKey(seconds, start, dim, key) for dim, key in pairs)
    return keys


def aggregate(
    observations: Iterable[Observation], sizes: Iterable[timedelta]
) -> dict[WindowKey, WindowCounts]:
    """Sum observations into per-window deltas, ready to be added to stored rows."""
    sizes = list(sizes)
    deltas: dict[WindowKey, WindowCounts] = {}
    for obs in observations:
        for key in keys_for(obs, sizes):
            deltas.setdefault(key, WindowCounts()).add(obs.sentiment, obs.score)
    return deltas
