"""The worker's progress watch: its consumer's offsets, fed to `monitor.progress` each second.

`ProgressWatch` is the thin adapter between Faust and the pure `ProgressTracker`: a Faust
signal tells it each new assignment (and counts rebalances), a timer reads the committed and
end offsets of the owned input partitions, and it logs each partition that stalls or
recovers once. `/ready` (pipelines/web.py) asks it whether anything is stalled, and
`/metrics` (pipelines/metrics.py) reads lag, assignment, rebalances and the time without
progress from it.

Offsets: the end offset is the consumer's high watermark from its last fetch; the committed
offset is Faust's record of what it committed (read at assignment, updated at each commit;
Faust has no public accessor). A partition this group never committed has no committed
offset: its lag is counted from the partition's first offset (what a new group reads from),
fetched from the broker once per assignment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
from faust.types import TP

from monitor.progress import Offsets, ProgressTracker, Stall

log = logging.getLogger(__name__)
WATCH_EVERY_S = 1.0


class ProgressWatch:
    """Whether this worker progresses on the input partitions it owns."""

    def __init__(
        self,
        app: faust.App,
        topic: str,
        stall_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.topic = topic
        self.clock = clock
        self.tracker: ProgressTracker[TP] = ProgressTracker(stall_after_s)
        self._first_offsets: dict[TP, int] = {}

    def attach(self) -> ProgressWatch:
        """Follow the app's assignments and watch its offsets every `WATCH_EVERY_S`."""

        # faust types a handler as a union of two callables, which mypy matches no function to
        @self.app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def on_assigned(app: faust.App, assigned: Iterable[TP], **_: Any) -> None:
            self.assigned([tp for tp in assigned if tp.topic == self.topic])

        @self.app.timer(WATCH_EVERY_S, name="finmon-progress-watch")
        async def watch() -> None:
            await self._fetch_first_offsets()
            self.watch()

        return self

    def assigned(self, partitions: list[TP]) -> None:
        self.tracker.assign(partitions, self.clock())
        self._first_offsets = {
            tp: offset for tp, offset in self._first_offsets.items() if tp in partitions
        }
        log.info(
            "assigned %d partition(s) of %s: %s (rebalance %d)",
            len(partitions),
            self.topic,
            sorted(tp.partition for tp in partitions),
            self.tracker.rebalances,
        )

    def offsets(self) -> dict[TP, Offsets]:
        """Committed and end offsets of the owned input partitions, as the consumer has them
        now (empty while it is not started or rebalancing)."""
        consumer = self.app.consumer
        try:
            assigned = consumer.assignment()
        except Exception:  # not started yet, or rebalancing: a scrape must still succeed
            return {}
        committed: Mapping[TP, int | None] = getattr(consumer, "_committed_offset", {})
        found: dict[TP, Offsets] = {}
        for tp in assigned:
            if tp.topic != self.topic:
                continue
            position = committed.get(tp)
            if position is None:
                position = self._first_offsets.get(tp)
            found[tp] = Offsets(position, consumer.highwater(tp))
        return found

    def watch(self) -> None:
        """Observe the offsets, and log partitions that stalled or recovered."""
        now = self.clock()
        self.tracker.observe(self.offsets(), now)
        check = self.tracker.check(now)
        for stall in check.newly_stalled:
            log.warning("%s", describe(stall, self.tracker.stall_after_s))
        for tp in check.recovered:
            log.info(
                "%s[%d] progresses again: ready as far as progress goes", tp.topic, tp.partition
            )

    @property
    def joined(self) -> bool:
        """Whether the worker has received its first assignment (possibly of no partition:
        a hot standby): until then it has not joined its consumer group."""
        return self.tracker.rebalances > 0

    def stalls(self) -> tuple[Stall[TP], ...]:
        return self.tracker.stalls(self.clock())

    def seconds_without_progress(self) -> float:
        return self.tracker.seconds_without_progress(self.clock())

    async def _fetch_first_offsets(self) -> None:
        """The first offset of each owned partition that has no committed offset, once."""
        consumer = self.app.consumer
        committed: Mapping[TP, int | None] = getattr(consumer, "_committed_offset", {})
        missing = [
            tp
            for tp in self.tracker.assigned
            if committed.get(tp) is None and tp not in self._first_offsets
        ]
        if not missing:
            return
        try:
            earliest = await consumer.earliest_offsets(*missing)
        except Exception as exc:  # the broker may be failing over: try again next time
            log.debug("could not read the first offsets of %s: %s", missing, exc)
            return
        self._first_offsets.update(
            {tp: offset for tp, offset in earliest.items() if offset is not None}
        )


def describe(stall: Stall[TP], stall_after_s: float) -> str:
    """The log line (and /ready detail) for a stalled partition: what, how long, and why
    it matters."""
    tp = stall.partition
    return (
        f"no progress for {stall.idle_s:.0f}s on {tp.topic}[{tp.partition}], which this worker"
        f" owns, with lag {stall.lag} (committed {stall.committed}, end {stall.end}): not ready"
        f" until it moves (kafka.stall_after {stall_after_s:.0f}s)"
    )
