"""How long each fault of a run stopped the stream, per input partition (pure).

Two figures per (fault, partition), from the time each item was stored and its partition:

* `first_progress_s`: from the fault to the first item of that partition stored after it
  (what the issue calls the pause: how long until the stream moved again there);
* `longest_gap_s`: the longest time the partition went without a stored item between the
  fault and the next one (or the end), counted from the fault. A rebalance stops every
  partition, not only those the fault hit, often a few seconds after the fault (a crashed
  worker is noticed after the session timeout): this catches that pause too.

On a steady stream both are the normal gap between batches when a fault did not touch a
partition.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Pause:
    fault: str
    partition: int
    first_progress_s: float
    longest_gap_s: float


def pauses(
    stores: Iterable[tuple[int, datetime]],
    faults: Sequence[tuple[str, datetime]],
    end: datetime,
) -> list[Pause]:
    """`stores`: (partition, stored at) of every item; `faults`: (name, at) in time order;
    `end`: when the run ended. A partition with nothing stored after a fault gets the time
    to `end` as both figures."""
    by_partition: dict[int, list[datetime]] = defaultdict(list)
    for partition, at in stores:
        by_partition[partition].append(at)
    found = []
    for index, (name, at) in enumerate(faults):
        until = faults[index + 1][1] if index + 1 < len(faults) else end
        for partition, times in sorted(by_partition.items()):
            after = sorted(t for t in times if t >= at)
            first = (after[0] if after else end) - at
            previous, longest = at, 0.0
            for t in (t for t in after if t < until):
                longest = max(longest, (t - previous).total_seconds())
                previous = t
            longest = max(longest, (min(until, after[0] if after else until) - at).total_seconds())
            found.append(Pause(name, partition, first.total_seconds(), longest))
    return found


@dataclass(frozen=True, slots=True)
class Summary:
    fault: str
    partitions: int
    first_progress_p50_s: float
    first_progress_max_s: float
    longest_gap_p50_s: float
    longest_gap_max_s: float

    def row(self) -> str:
        return (
            f"| {self.fault} | {self.partitions} | {self.first_progress_p50_s:.1f} |"
            f" {self.first_progress_max_s:.1f} | {self.longest_gap_p50_s:.1f} |"
            f" {self.longest_gap_max_s:.1f} |"
        )


def summarise(found: Sequence[Pause]) -> list[Summary]:
    """p50 and max per fault, then over all faults (`fault` = "all")."""
    groups: dict[str, list[Pause]] = defaultdict(list)
    for pause in found:
        groups[pause.fault].append(pause)
    groups["all"] = list(found)
    return [
        Summary(
            fault,
            len({p.partition for p in group}),
            statistics.median(p.first_progress_s for p in group),
            max(p.first_progress_s for p in group),
            statistics.median(p.longest_gap_s for p in group),
            max(p.longest_gap_s for p in group),
        )
        for fault, group in groups.items()
        if group
    ]
