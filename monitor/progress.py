"""Stall detection: whether a worker that owns partitions with lag is still making progress.

A consumer-group worker can own partitions and not process them: a hung model or database
call, a frozen process, or a consumer that stopped fetching after a rebalance (a known way
for Faust workers to fail). Kafka sees nothing wrong (the worker heartbeats), so the group
never moves those partitions; only the worker can tell, by watching its own offsets.

`ProgressTracker` is that watch, pure and driven by a clock the caller passes in. It is fed
snapshots of the owned partitions (committed and end offset) and says which partitions are
stalled: they have lag (end > committed) and their committed offset has not moved for
`stall_after`, counted from the latest of their assignment, their last advance and the
last time they were seen caught up. So an idle partition is never stalled however long it
is quiet, a partition just assigned by a rebalance gets the full `stall_after` to start,
and a partition the worker no longer owns is forgotten at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Offsets:
    """One partition's positions: `committed` (None until known) and the log `end`."""

    committed: int | None
    end: int | None

    @property
    def lag(self) -> int | None:
        """Messages not yet committed; None while either offset is unknown."""
        if self.committed is None or self.end is None:
            return None
        return max(self.end - self.committed, 0)


@dataclass(frozen=True, slots=True)
class Stall(Generic[P]):
    """A partition with lag whose committed offset has not moved for `idle_s` seconds."""

    partition: P
    lag: int
    committed: int
    end: int
    idle_s: float


@dataclass(slots=True)
class _Watch:
    since: float
    """When the partition last progressed: assigned, committed offset moved, or caught up."""
    committed: int | None = None
    offsets: Offsets = field(default_factory=lambda: Offsets(None, None))


@dataclass(frozen=True, slots=True)
class Check(Generic[P]):
    """The result of `ProgressTracker.check`: what is stalled now, and what changed."""

    stalled: tuple[Stall[P], ...]
    newly_stalled: tuple[Stall[P], ...]
    recovered: tuple[P, ...]

    @property
    def ok(self) -> bool:
        return not self.stalled


class ProgressTracker(Generic[P]):
    """Per-partition progress of one worker; see the module docstring for the rules."""

    def __init__(self, stall_after_s: float) -> None:
        if stall_after_s <= 0:
            raise ValueError("stall_after must be positive")
        self.stall_after_s = stall_after_s
        self.rebalances = 0
        self._watches: dict[P, _Watch] = {}
        self._stalled: set[P] = set()

    @property
    def assigned(self) -> frozenset[P]:
        return frozenset(self._watches)

    def assign(self, partitions: Iterable[P], now: float) -> None:
        """A rebalance gave the worker `partitions` (its whole new assignment). Partitions it
        keeps keep their history; new ones start their grace now; lost ones are dropped."""
        wanted = set(partitions)
        self.rebalances += 1
        for partition in list(self._watches):
            if partition not in wanted:
                del self._watches[partition]
                self._stalled.discard(partition)
        for partition in wanted:
            self._watches.setdefault(partition, _Watch(since=now))

    def observe(self, offsets: Mapping[P, Offsets], now: float) -> None:
        """Take a snapshot of owned partitions' offsets (partitions not assigned are ignored;
        assigned ones missing from the snapshot keep their last offsets)."""
        for partition, current in offsets.items():
            watch = self._watches.get(partition)
            if watch is None:
                continue
            moved = (
                current.committed is not None
                and watch.committed is not None
                and current.committed > watch.committed
            )
            if moved or current.lag == 0:
                watch.since = now
            if current.committed is not None:
                watch.committed = current.committed
            watch.offsets = current

    def stalls(self, now: float) -> tuple[Stall[P], ...]:
        """The partitions stalled at `now` (a query: changes nothing)."""
        return tuple(
            Stall(partition, lag, watch.offsets.committed or 0, watch.offsets.end or 0, idle)
            for partition, watch in self._watches.items()
            if (lag := watch.offsets.lag) and (idle := now - watch.since) >= self.stall_after_s
        )

    def check(self, now: float) -> Check[P]:
        """`stalls(now)`, and which partitions became or stopped being stalled since the
        previous `check` (for logging each change once)."""
        stalled = self.stalls(now)
        now_stalled = {s.partition for s in stalled}
        newly = tuple(s for s in stalled if s.partition not in self._stalled)
        recovered = tuple(p for p in self._stalled if p not in now_stalled)
        self._stalled = now_stalled
        return Check(stalled, newly, recovered)

    def seconds_without_progress(self, now: float) -> float:
        """The longest any owned partition with lag has gone without progress (0 when no
        partition has lag: a caught-up worker is not waiting for anything)."""
        return max(
            (now - w.since for w in self._watches.values() if w.offsets.lag),
            default=0.0,
        )

    def offsets(self) -> dict[P, Offsets]:
        """The last offsets seen of every owned partition."""
        return {partition: watch.offsets for partition, watch in self._watches.items()}
