"""Trend windows: pure arithmetic, no I/O.

A window of size S starting at T covers [T, T+S) in UTC, aligned to the Unix epoch, so every
worker computes the same boundaries with no coordination. An item counts in one window per
size and per dimension: `all` (key `*`), its `topic`, and each of its `tickers`. A ticker's
windows count the sentiment towards that ticker when the item carries one (`towards`), else
the item's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

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


class WindowKey(NamedTuple):
    """Identifies one trend window row. A named tuple, not a frozen dataclass: cheaper to
    build and hash (a frozen dataclass sets each field through `object.__setattr__`)."""

    window_seconds: int
    window_start: datetime
    dimension: str
    key: str

    @property
    def window_end(self) -> datetime:
        return self.window_start + timedelta(seconds=self.window_seconds)


@dataclass(slots=True)
class WindowCounts:
    """Counts and score sum of one window; added together when items arrive. The `novel_`
    fields count only the items that started a story (`monitor.novelty`)."""

    n_bearish: int = 0
    n_neutral: int = 0
    n_bullish: int = 0
    score_sum: float = 0.0
    novel_bearish: int = 0
    novel_neutral: int = 0
    novel_bullish: int = 0
    novel_score_sum: float = 0.0

    @property
    def n_total(self) -> int:
        return self.n_bearish + self.n_neutral + self.n_bullish

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.n_total if self.n_total else 0.0

    @property
    def n_novel(self) -> int:
        return self.novel_bearish + self.novel_neutral + self.novel_bullish

    def stories(self) -> WindowCounts:
        """The window counted in stories: one item per story, the story's first."""
        return WindowCounts(
            self.novel_bearish, self.novel_neutral, self.novel_bullish, self.novel_score_sum
        )

    def merge(self, other: WindowCounts) -> None:
        self.n_bearish += other.n_bearish
        self.n_neutral += other.n_neutral
        self.n_bullish += other.n_bullish
        self.score_sum += other.score_sum
        self.novel_bearish += other.novel_bearish
        self.novel_neutral += other.novel_neutral
        self.novel_bullish += other.novel_bullish
        self.novel_score_sum += other.novel_score_sum


@dataclass(frozen=True, slots=True)
class Observation:
    """What windowing needs from one classified item."""

    published_at: datetime
    topic: str
    tickers: tuple[str, ...]
    sentiment: str
    score: float
    is_novel: bool = True
    """Whether the item started a story (an item whose novelty is unknown counts as one)."""
    towards: tuple[tuple[str, str, float], ...] = ()
    """(ticker, sentiment, score) of the tickers whose windows count their own sentiment."""


def _entries(
    obs: Observation, steps: list[int]
) -> list[tuple[tuple[int, datetime, str, str], str, float]]:
    """(window key, sentiment, score) for every window `obs` counts in."""
    own = (obs.sentiment, obs.score)
    towards = {ticker: (sentiment, score) for ticker, sentiment, score in obs.towards}
    pairs = [
        ("all", ALL_KEY, own),
        ("topic", obs.topic, own),
        *(("ticker", t, towards.get(t, own)) for t in obs.tickers),
    ]
    entries: list[tuple[tuple[int, datetime, str, str], str, float]] = []
    for step in steps:
        start = window_start(obs.published_at, timedelta(seconds=step))
        entries.extend(((step, start, dim, key), s, score) for dim, key, (s, score) in pairs)
    return entries


_COLUMN = {label: column for column, label in enumerate(SENTIMENT_LABELS)}
"""Where a sentiment is counted in `aggregate`'s sums (n_bearish, n_neutral, n_bullish)."""


def aggregate(
    observations: Iterable[Observation], sizes: Iterable[timedelta]
) -> dict[WindowKey, WindowCounts]:
    """Sum observations into per-window deltas, ready to be added to stored rows.

    Summed in plain tuples and lists, and made `WindowKey`s and `WindowCounts` once per
    window: a batch counts in several (window, key) pairs per item but touches far fewer
    distinct windows, and building the objects per pair was a visible share of the worker's
    CPU (docs/performance.md)."""
    steps = [int(size.total_seconds()) for size in sizes]
    sums: dict[tuple[int, datetime, str, str], list[float]] = {}
    for obs in observations:
        for key, sentiment, score in _entries(obs, steps):
            column = _COLUMN.get(sentiment)
            if column is None:
                raise ValueError(f"unknown sentiment label {sentiment!r}")
            counts = sums.get(key)
            if counts is None:
                counts = sums[key] = [0, 0, 0, 0.0, 0, 0, 0, 0.0]
            counts[column] += 1
            counts[3] += score
            if obs.is_novel:
                counts[4 + column] += 1
                counts[7] += score
    return {
        WindowKey._make(key): WindowCounts(
            int(c[0]), int(c[1]), int(c[2]), c[3], int(c[4]), int(c[5]), int(c[6]), c[7]
        )
        for key, c in sums.items()
    }
