"""Pacing rule evaluation: at most once per interval, over every window touched since.

Evaluating the rules after every stored batch cost a few queries per batch whatever its
size: a real share of a batch's time at full speed, and the tail of its latency
(docs/performance.md). Stored batches only note the windows they touched, and a timer
judges the union of them at most once per interval: the same verdicts (a rule reads a
window's totals, not the batch's delta), at most one interval later.

Pure logic with an injected monotonic clock; the lock only makes `add` (the worker's store
thread) and `take_due` (the scheduler's thread) safe to call at once.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class EvaluationPacer(Generic[K]):
    """Windows waiting to be judged, handed out at most once per `interval` seconds."""

    def __init__(self, interval_s: float) -> None:
        if interval_s < 0:
            raise ValueError("interval_s must be >= 0")
        self.interval_s = interval_s
        self._pending: dict[K, None] = {}  # insertion-ordered set
        self._last: float | None = None
        self._lock = threading.Lock()

    def add(self, keys: Iterable[K]) -> None:
        """Note `keys` as touched since the last hand-out."""
        with self._lock:
            self._pending.update(dict.fromkeys(keys))

    def take_due(self, now: float) -> list[K]:
        """Everything pending if the last hand-out is `interval_s` old at `now`, else []."""
        with self._lock:
            return self._take(now, force=False)

    def take_all(self, now: float) -> list[K]:
        """Everything pending, due or not (end of a replay, shutdown)."""
        with self._lock:
            return self._take(now, force=True)

    def give_back(self, keys: Iterable[K]) -> None:
        """Return keys whose evaluation failed, so the next hand-out retries them."""
        with self._lock:
            self._pending = dict.fromkeys(keys) | self._pending

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _take(self, now: float, *, force: bool) -> list[K]:
        if not self._pending:
            return []
        if not force and self._last is not None and now - self._last < self.interval_s:
            return []
        keys = list(self._pending)
        self._pending.clear()
        self._last = now
        return keys
