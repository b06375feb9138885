"""The four deliveries of a stream, and one run of a delivery through the worker's code
path (`Runtime` + `AlertService`) on SQLite and a simulated clock."""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from alerts.channels import build_channels
from alerts.models import AlertDeliveryRow, AlertNoticeRow, AlertRow
from alerts.rules import AlertSettings
from alerts.service import AlertService
from bench.alerts.stream import (
    BACKLOG_RATE,
    BATCH,
    END,
    START,
    STEP_S,
    Item,
    LabelClassifier,
    Stream,
)
from finmon.runtime import assemble
from monitor.db.engine import make_engine, upgrade
from monitor.settings import Settings


@dataclass(slots=True)
class Arrival:
    """An item arriving at processing time `at` (seconds since the run began) on a partition."""

    at: float
    partition: int
    item: Item


def partition_of(item: Item, partitions: int = 4) -> int:
    """The item's partition, by its id as Kafka's keyed producer would (a stable hash: the
    run must not depend on the interpreter's hash seed)."""
    return zlib.crc32(item.id.encode()) % partitions


def live(stream: Stream, rng: random.Random) -> list[Arrival]:
    """Each item a few seconds after it was published; partition by id, as Kafka keys do."""
    return sorted(
        (
            Arrival((i.at - START).total_seconds() + rng.uniform(2, 20), partition_of(i), i)
            for i in stream.items
        ),
        key=lambda a: a.at,
    )


def backlog(
    items: Sequence[Item],
    partitions: Sequence[list[Item]] | None,
    begin: float,
    speeds: Sequence[float] = (1.0,),
) -> list[Arrival]:
    """Items drained from a backlog starting at `begin`: each partition in its own order at
    BACKLOG_RATE * its speed, the partitions interleaved by time."""
    parts = partitions or [list(items)]
    arrivals = []
    for p, (part, speed) in enumerate(zip(parts, speeds, strict=True)):
        rate = BACKLOG_RATE * speed / len(parts)
        arrivals += [Arrival(begin + k / rate, p, item) for k, item in enumerate(part)]
    return sorted(arrivals, key=lambda a: a.at)


def deliveries(stream: Stream, seed: int) -> dict[str, list[Arrival]]:
    rng = random.Random(seed)
    outage_end = (END - START).total_seconds() + 60  # the backlog starts after the stream
    shuffled = list(stream.items)
    rng.shuffle(shuffled)
    by_partition: list[list[Item]] = [[] for _ in range(4)]
    for item in stream.items:
        by_partition[partition_of(item)].append(item)
    first = live(stream, rng)
    again = backlog(stream.items, None, first[-1].at + 600)
    return {
        "a in order (live)": first,
        "b shuffled backlog": backlog(
            shuffled, [shuffled[i::4] for i in range(4)], outage_end, (1, 1, 1, 1)
        ),
        "c 4 partitions, speeds 1, 1/2, 1/4, 1/8": backlog(
            stream.items, by_partition, outage_end, (1, 0.5, 0.25, 0.125)
        ),
        "d live, then redelivered": first + again,
    }


class SimClock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds

    @property
    def wall(self) -> datetime:
        return START + timedelta(seconds=self.seconds)


@dataclass(slots=True)
class Run:
    incidents: list[dict[str, Any]]
    notices: list[dict[str, Any]]
    messages: int
    progress: list[tuple[float, datetime]]
    """(processing time, newest published_at delivered so far) after each batch."""
    first_arrival: dict[str, float]


def run(
    settings: Settings,
    alert_settings: AlertSettings,
    arrivals: list[Arrival],
    stream: Stream,
    folder: Path,
) -> Run:
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    clock = SimClock()
    channels = build_channels(alert_settings, settings.resolve, {})
    service = AlertService(
        alert_settings, engine, channels, monotonic=clock, wall=lambda: clock.wall
    )
    runtime = assemble(settings, engine, LabelClassifier(stream.items), service)
    progress: list[tuple[float, datetime]] = []
    first_arrival: dict[str, float] = {}
    episode_items = _episode_items(stream)
    newest = START
    pending: list[Arrival] = []
    index, horizon = 0, arrivals[-1].at + 3 * 3600  # then let the quiet stream resolve
    next_sweep = next_delivery = 0.0
    while clock.seconds < horizon:
        while index < len(arrivals) and arrivals[index].at <= clock.seconds:
            pending.append(arrivals[index])
            index += 1
        if pending:
            batch, pending = pending[:BATCH], pending[BATCH:]
            outcome = runtime.processor.process([a.item.message(a.partition) for a in batch])
            if outcome.dead_letters:  # every generated message is valid: a failure is a bug
                raise RuntimeError(f"dead-lettered: {outcome.dead_letters[0].reason}")
            clock.seconds += len(batch) / BACKLOG_RATE  # the batch's processing time
            for a in batch:
                newest = max(newest, a.item.at)
                for name in episode_items.get(a.item.id, ()):
                    first_arrival.setdefault(name, a.at)
            progress.append((clock.seconds, newest))
        else:
            upcoming = arrivals[index].at if index < len(arrivals) else horizon
            clock.seconds = min(max(upcoming, clock.seconds), clock.seconds + STEP_S)
        service.evaluate_due(clock.wall)  # paced to evaluate_every by the service itself
        if clock.seconds >= next_sweep:
            service.sweep(clock.wall)
            next_sweep = clock.seconds + 30
        if clock.seconds >= next_delivery:
            service.deliver_pending(clock.wall)
            next_delivery = clock.seconds + 2
    service.deliver_pending_until_idle(clock.wall)
    with engine.connect() as conn:
        incidents = [dict(r._mapping) for r in conn.execute(select(AlertRow.__table__))]
        notices = [dict(r._mapping) for r in conn.execute(select(AlertNoticeRow.__table__))]
        messages = len(conn.execute(select(AlertDeliveryRow.__table__.c.id)).all())
    engine.dispose()
    return Run(incidents, notices, messages, progress, first_arrival)


def _episode_items(stream: Stream) -> dict[str, list[str]]:
    """Item id -> the episodes it belongs to (bearish items of an episode's keys in its span)."""
    out: dict[str, list[str]] = {}
    for item in stream.items:
        for ep in stream.episodes:
            if (
                ep.start <= item.at < ep.end
                and item.sentiment == "bearish"
                and (set(item.tickers) & ep.tickers)
            ):
                out.setdefault(item.id, []).append(ep.name)
    return out
