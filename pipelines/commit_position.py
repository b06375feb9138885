"""Where a partition's committed offset may move: never past an offset not yet finished.

A committed offset says "every record below this one is done": a worker that takes the
partition over starts there. So it may only advance through a run of finished (acked)
offsets that starts exactly at the current position, the *floor*. An offset acked above a
hole says nothing about the hole; it waits until the hole is filled.

`commit_position` is that rule, pure. The worker's consumer (pipelines/kafka_consumer.py)
uses it in place of Faust's own, which lets the position jump over a hole of one offset and
counts offsets it skipped while reading as finished.
"""

from __future__ import annotations

from collections.abc import Iterable


def commit_position(floor: int, acked: Iterable[int]) -> tuple[int, list[int]]:
    """The new position given the current one (`floor`) and the offsets acked since, and
    the acked offsets still waiting above it (sorted, each once).

    The position moves through every acked offset that continues it, and stops at the first
    one not acked, which it names. Acked offsets below `floor` are already committed and
    are dropped (a record redelivered after a seek may be acked twice)."""
    done = set(acked)
    position = floor
    while position in done:
        position += 1
    return position, sorted(offset for offset in done if offset > position)
