"""Event-time progress: the watermark, kept per input partition. Pure; the caller passes the
processing-time clock (seconds of a monotonic clock), so tests and benchmarks drive it.

The watermark is the event time up to which the worker believes it has seen the data:

    partition watermark  = newest `published_at` seen on the partition - allowed_lateness
    watermark            = the minimum over the partitions that are not idle

A partition is *idle* once nothing arrived on it for `idle_timeout` (processing time); it
then no longer holds the others back (a drained partition must not stop the clock). When
every partition is idle, the stream is quiet: nothing published before the wall clock minus
`allowed_lateness` is taken to be still on its way, so the watermark moves up to there. A
quiet stream still closes its windows, and an incident whose key went silent still
resolves; should an item come later after all, it is late data (below). `finish()` (the end
of a replayed file) moves the watermark past everything.

The watermark never moves backwards: a redelivered or late item cannot reopen a window that
was closed. Late items are still stored and counted; the alert lifecycle folds them into
the incident of their window (`alerts.lifecycle`).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_END_OF_INPUT = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class _Partition:
    newest: datetime
    """The newest event time seen on the partition."""
    arrived: float
    """When (processing time) the last item arrived on it."""


class Watermark:
    """The event time below which windows count as closed; safe to call from two threads
    (the store thread notes items, the scheduler thread reads the watermark)."""

    def __init__(self, allowed_lateness: timedelta, idle_timeout: timedelta) -> None:
        if allowed_lateness < timedelta(0) or idle_timeout <= timedelta(0):
            raise ValueError("allowed_lateness must be >= 0 and idle_timeout > 0")
        self.allowed_lateness = allowed_lateness
        self.idle_timeout_s = idle_timeout.total_seconds()
        self._partitions: dict[Hashable, _Partition] = {}
        self._floor: datetime | None = None
        """The highest watermark handed out: it never goes back."""
        self._finished = False
        self._lock = threading.Lock()

    def note(self, newest: Mapping[Hashable, datetime], arrived: float) -> None:
        """Record the newest event time of each partition in a stored batch, at `arrived`."""
        with self._lock:
            for partition, at in newest.items():
                seen = self._partitions.get(partition)
                if seen is None:
                    self._partitions[partition] = _Partition(at, arrived)
                else:
                    seen.newest = max(seen.newest, at)
                    seen.arrived = arrived

    def finish(self) -> None:
        """The input has ended (a replayed file): every window is closed from now on."""
        with self._lock:
            self._finished = True

    def current(self, now: float, wall: datetime) -> datetime | None:
        """The watermark at processing time `now` (monotonic seconds), the wall clock then
        being `wall`; None before any item was seen."""
        with self._lock:
            if self._finished:
                return _END_OF_INPUT
            if not self._partitions:
                return self._floor
            active = [p for p in self._partitions.values() if now - p.arrived < self.idle_timeout_s]
            if active:
                mark = min(p.newest for p in active) - self.allowed_lateness
            else:  # a quiet stream: nothing older than the wall clock is still coming
                newest = max(p.newest for p in self._partitions.values())
                mark = max(newest, wall) - self.allowed_lateness
            if self._floor is None or mark > self._floor:
                self._floor = mark
            return self._floor

    @property
    def partitions(self) -> int:
        return len(self._partitions)
