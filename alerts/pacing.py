"""Which windows to judge, and when: closed, settled, at most once per interval.

Evaluating the rules after every stored batch cost a few queries per batch whatever its
size (docs/performance.md). Stored batches only note the windows they touched, and a timer
hands them out at most once per interval. A window is handed out only once it is

- *closed*: the watermark (alerts/watermark.py) has passed its end, so its counts and those
  of its baseline, which precede it, are complete as far as the worker can tell; and
- *settled*: no stored batch touched it since the previous hand-out. In order, a window is
  settled long before it closes; in a backlog drained out of order, a window keeps being
  touched while the backlog drains, and is judged once, on its full counts, instead of on
  every partial count along the way.

Late items (behind the watermark when noted) mean the stream is out of order beyond the
allowed lateness, as in a shuffled backlog: then nothing is handed out until an interval
brings no late item (at most `max_defer_s`), so the backlog's windows are judged once it
has drained, on their full counts and full baselines, not on whatever part of them arrived
first. A late item's window is judged again once settled: the lifecycle folds the new
verdict into the window's incident.

Pure logic with an injected monotonic clock; the lock only makes `add` (the worker's store
thread) and `take_due` (the scheduler's thread) safe to call at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from monitor.windows import WindowKey


class EvaluationPacer:
    """Windows waiting to be judged, handed out at most once per `interval_s` seconds."""

    def __init__(self, interval_s: float, max_defer_s: float = 60.0) -> None:
        if interval_s < 0 or max_defer_s < 0:
            raise ValueError("interval_s and max_defer_s must be >= 0")
        self.interval_s = interval_s
        self.max_defer_s = max_defer_s
        self._late = False  # a late window was noted since the last hand-out
        self._deferred_since: float | None = None
        self._fresh: dict[WindowKey, None] = {}  # touched since the last hand-out
        self._waiting: dict[WindowKey, None] = {}  # touched before it, not handed out yet
        self._last: float | None = None
        self._lock = threading.Lock()

    def add(self, keys: Iterable[WindowKey], watermark: datetime | None = None) -> None:
        """Note `keys` as touched since the last hand-out; `watermark` is the watermark
        before the batch, to tell late windows."""
        with self._lock:
            for key in keys:
                self._fresh[key] = None
                self._late = self._late or _closed(key, watermark)

    def take_due(self, now: float, watermark: datetime | None) -> list[WindowKey]:
        """The closed, settled windows, if the last hand-out is `interval_s` old at `now`."""
        with self._lock:
            if self._last is not None and now - self._last < self.interval_s:
                return []
            self._last = now
            late, self._late = self._late, False
            if late:
                if self._deferred_since is None:
                    self._deferred_since = now
                if now - self._deferred_since < self.max_defer_s:
                    return self._take(lambda w: False)  # out of order: wait for it to drain
            self._deferred_since = None
            return self._take(lambda w: w not in self._fresh and _closed(w, watermark))

    def take_all(self, now: float, watermark: datetime | None) -> list[WindowKey]:
        """Every closed window, settled or not (the end of a replay, shutdown)."""
        with self._lock:
            self._last = now
            self._late, self._deferred_since = False, None
            return self._take(lambda w: _closed(w, watermark))

    def give_back(self, keys: Iterable[WindowKey]) -> None:
        """Return windows whose evaluation failed, so the next hand-out retries them."""
        with self._lock:
            self._waiting = dict.fromkeys(keys) | self._waiting

    @property
    def pending(self) -> int:
        """Windows noted and not judged yet (open, unsettled or not yet due)."""
        with self._lock:
            return len(self._waiting.keys() | self._fresh.keys())

    def _take(self, ready: Callable[[WindowKey], bool]) -> list[WindowKey]:
        candidates = self._waiting | self._fresh
        taken = [w for w in candidates if ready(w)]
        handed = set(taken)
        self._waiting = {w: None for w in candidates if w not in handed}
        self._fresh = {}
        return taken


def _closed(window: WindowKey, watermark: datetime | None) -> bool:
    return watermark is not None and window.window_end <= watermark
