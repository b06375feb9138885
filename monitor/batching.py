"""When the worker hands the classifier its next batch: full, or the oldest item is due.

A batch is due once it holds ``max_size`` items, or once its oldest item has waited
``max_wait``, counted from that item's arrival. The clock is per item on purpose: Faust's
``take(within=...)`` restarts its timer after every batch it yields, so an item that came in
while the classifier was busy waited for that batch to finish *and* a whole ``max_wait``
after it, which doubled the latency tail at half load (docs/performance.md).

The caller says how many batches the classifier has (running, or queued behind the running
one); this object says when the next batch is due and hands it out, oldest first. It is
pure: the caller passes the clock, so tests drive it with plain numbers.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """Items waiting for the classifier, in arrival order."""

    def __init__(self, max_size: int, max_wait: float, classifier_slots: int = 2) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        if max_wait < 0:
            raise ValueError(f"max_wait must not be negative, not {max_wait}")
        if classifier_slots < 1:
            raise ValueError(f"classifier_slots must be at least 1, not {classifier_slots}")
        self.max_size = max_size
        self.max_wait = max_wait
        self.classifier_slots = classifier_slots
        """Batches the classifier may hold at once: the one it runs and those queued."""
        self._waiting: deque[tuple[float, T]] = deque()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, item: T, now: float) -> bool:
        """An item that arrived at ``now`` (not earlier than any item added before).

        True when this moved the next due time: the item is the oldest one waiting (its
        arrival starts the clock) or it filled a batch. Any other item changes nothing a
        waiter must look at again, so the caller wakes one only when this says so."""
        self._waiting.append((now, item))
        return len(self._waiting) in (1, self.max_size)

    def due_at(self, with_classifier: int = 0) -> float | None:
        """When the next batch is due, given the batches the classifier already has: the
        moment it filled up, or its oldest item's arrival plus ``max_wait``, whichever is
        first; ``None`` while nothing is due.

        While the classifier is busy (``with_classifier`` > 0) only a full batch is due,
        and only while a slot is free: a full batch cannot grow, so it is decoded and
        queued behind the running one, and the classifier goes from batch to batch without
        a gap. A partial batch keeps filling until the classifier is free, since on a
        loaded CPU a bigger batch is cheaper per item."""
        if not self._waiting or with_classifier >= self.classifier_slots:
            return None
        filled = self._waiting[self.max_size - 1][0] if len(self) >= self.max_size else None
        if with_classifier:
            return filled
        deadline = self._waiting[0][0] + self.max_wait
        return deadline if filled is None else min(deadline, filled)

    def take(self) -> list[T]:
        """The next batch: up to ``max_size`` items, oldest first (whether due or not)."""
        count = min(self.max_size, len(self._waiting))
        return [self._waiting.popleft()[1] for _ in range(count)]
