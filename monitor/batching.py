"""When the worker hands the classifier its next batch: full, or the oldest item is due.

A batch is due once it holds ``max_size`` items, or once its oldest item has waited
``max_wait``, counted from that item's arrival. The clock is per item on purpose: Faust's
``take(within=...)`` restarts its timer after every batch it yields, so an item that came in
while the classifier was busy waited for that batch to finish *and* a whole ``max_wait``
after it (on 2 cores at half load: p99 1.9 s against ~0.9 s; docs/performance.md).

The caller says whether the classifier is busy; this object only says when the next batch is
due and hands it out, oldest first. It is pure: the caller passes the clock, so tests drive
it with plain numbers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """Items waiting for the classifier, in arrival order."""

    def __init__(self, max_size: int, max_wait: float) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        if max_wait < 0:
            raise ValueError(f"max_wait must not be negative, not {max_wait}")
        self.max_size = max_size
        self.max_wait = max_wait
        self._waiting: deque[tuple[float, T]] = deque()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, items: Iterable[T], now: float) -> None:
        """Items that arrived at ``now`` (not earlier than any item added before)."""
        self._waiting.extend((now, item) for item in items)

    def due_at(self, *, busy: bool = False) -> float | None:
        """When the next batch is due: the moment it filled up, or its oldest item's arrival
        plus ``max_wait``, whichever is first; ``None`` while nothing is due.

        While the classifier is ``busy`` only a full batch is due: it cannot grow, so it is
        decoded and queued behind the running one, and the classifier goes from batch to
        batch without a gap. A partial batch keeps filling until the classifier is free,
        since on a loaded CPU a bigger batch is cheaper per item."""
        if not self._waiting:
            return None
        filled = self._waiting[self.max_size - 1][0] if len(self) >= self.max_size else None
        if busy:
            return filled
        deadline = self._waiting[0][0] + self.max_wait
        return deadline if filled is None else min(deadline, filled)

    def take(self) -> list[T]:
        """The next batch: up to ``max_size`` items, oldest first (whether due or not)."""
        count = min(self.max_size, len(self._waiting))
        return [self._waiting.popleft()[1] for _ in range(count)]
