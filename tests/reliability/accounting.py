"""Counting every message of a fault run: where each produced id ended up.

A `Feed` is N identified messages, some of them invalid on purpose; a `PacedProducer` sends
it while the worker runs, so a fault lands mid-stream; `account` then reads the database, the
output topic and the dead-letter topic and says, per id, whether it was stored once,
dead-lettered, counted twice or lost.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import Engine, select

from harness.stack import KAFKA_BOOTSTRAP
from harness.worker import (
    WorkerHarness,
    news,
    read_topic,
    stored_count,
    wait_for,
    window_total,
)
from monitor.db.models import NewsItemRow

WINDOW_SIZES = (60, 300, 3600)
HEADLINES = (
    "$AAPL shares jump 6% after Apple beats quarterly earnings estimates",
    "$BA plunges 9% after Boeing grounds fleet following safety incident",
    "Fed holds rates steady, signals patience on future cuts",
    "$XOM Exxon Mobil declares quarterly dividend of $0.95 per share",
    "$TSLA tumbles as regulators open probe into Tesla",
    "$MSFT to acquire cloud security startup in $2bn deal",
    "Oil prices slide as OPEC output rises more than expected",
)


@dataclass(frozen=True)
class Feed:
    """`n` messages with ids `<prefix>-<i>`: every `invalid_every`-th one has a blank
    headline, so it must be dead-lettered; every other one must be stored. Items are spread
    over `spread_minutes` minutes from `newest_minutes_ago` back (by default many 1- and
    5-minute windows)."""

    prefix: str
    n: int
    invalid_every: int = 10
    headlines: tuple[str, ...] = HEADLINES
    spread_minutes: int = 50
    newest_minutes_ago: int = 1

    def item_id(self, i: int) -> str:
        return f"{self.prefix}-{i}"

    def valid(self, i: int) -> bool:
        return i % self.invalid_every != self.invalid_every - 1

    @property
    def ids(self) -> set[str]:
        return {self.item_id(i) for i in range(self.n)}

    @property
    def to_store(self) -> set[str]:
        return {self.item_id(i) for i in range(self.n) if self.valid(i)}

    @property
    def to_dead_letter(self) -> set[str]:
        return self.ids - self.to_store

    def messages(self) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs, keyed by id like a real feed."""
        return [
            (
                self.item_id(i).encode(),
                news(
                    self.item_id(i),
                    self.headlines[i % len(self.headlines)] if self.valid(i) else "   ",
                    minutes_ago=self.newest_minutes_ago + i % self.spread_minutes,
                    source="reliability",
                ),
            )
            for i in range(self.n)
        ]


class PacedProducer:
    """Sends (key, value) pairs at `per_second` from a background thread, through one
    long-lived idempotent producer (acks=all). Sends made while the broker is down are
    buffered and retried by the client, so nothing is lost before it reaches the topic;
    `join` fails if any send was not acknowledged in the end."""

    def __init__(
        self,
        topic: str,
        messages: Sequence[tuple[bytes | None, bytes]],
        *,
        per_second: float | None = None,
        max_request_size: int = 1024 * 1024,
        bootstrap: str = KAFKA_BOOTSTRAP,
    ) -> None:
        self.topic = topic
        self.bootstrap = bootstrap
        self.messages = list(messages)
        self.per_second = per_second
        self.max_request_size = max_request_size
        self.acknowledged = 0
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)

    def start(self) -> PacedProducer:
        self._thread.start()
        return self

    def join(self, timeout: float = 420) -> int:
        """Wait for every send to be acknowledged; the number acknowledged."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"producer still sending after {timeout}s")
        if self.errors:
            raise AssertionError(f"{len(self.errors)} sends failed, first: {self.errors[0]!r}")
        return self.acknowledged

    def _run(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap.split(","),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=self.max_request_size,
            delivery_timeout_ms=400_000,
            max_block_ms=400_000,
        )
        try:
            started = time.monotonic()
            futures = []
            for n, (key, value) in enumerate(self.messages):
                futures.append(producer.send(self.topic, key=key, value=value))
                if self.per_second:
                    time.sleep(max(0.0, started + (n + 1) / self.per_second - time.monotonic()))
            producer.flush(timeout=400)
            for future in futures:
                try:
                    future.get(timeout=30)
                    self.acknowledged += 1
                except Exception as exc:
                    self.errors.append(exc)
        except Exception as exc:
            self.errors.append(exc)
        finally:
            producer.close(timeout=10)


def _ids(records: Sequence[Any]) -> list[str]:
    """The `id` of each record whose value is a JSON object with one."""
    found = []
    for record in records:
        try:
            doc = json.loads(record.value)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            found.append(doc["id"])
    return found


def _stored_ids(engine: Engine, ids: set[str]) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(NewsItemRow.id))) & ids


@dataclass(frozen=True)
class Accounting:
    """Where a feed's messages ended up. `duplicates` and `lost` must be 0."""

    run: str
    produced: int
    """Distinct ids sent (all acknowledged by the broker)."""
    stored: int
    dead_lettered: int
    duplicates: int
    """Counted more than once: window totals above the stored rows, or an id both stored
    and dead-lettered (a row per id is guaranteed by the primary key)."""
    lost: int
    """Neither stored nor dead-lettered, or window totals below the stored rows."""
    misrouted: int
    """Stored though invalid, or dead-lettered though valid."""
    unpublished: int
    """Stored but never published to the output topic."""
    redelivered: int
    """Extra copies on the output and dead-letter topics: at-least-once delivery, allowed."""

    def assert_exact(self) -> None:
        assert (self.duplicates, self.lost, self.misrouted, self.unpublished) == (0, 0, 0, 0), self
        assert self.stored + self.dead_lettered == self.produced, self

    def row(self) -> str:
        """A row of the fault table in docs/reliability.md."""
        cells = (
            self.run,
            self.produced,
            self.stored,
            self.dead_lettered,
            self.duplicates,
            self.lost,
            self.redelivered,
        )
        return "| " + " | ".join(str(c) for c in cells) + " |"


def account(
    run: str,
    feed: Feed,
    engine: Engine,
    output_topic: str,
    dead_letter_topic: str,
    bootstrap: str = KAFKA_BOOTSTRAP,
) -> Accounting:
    """Count the feed's outcome now (call `wait_until_accounted` first)."""
    stored = _stored_ids(engine, feed.ids)
    published = _ids(read_topic(output_topic, bootstrap=bootstrap))
    dead = _ids(read_topic(dead_letter_topic, bootstrap=bootstrap))
    rows = stored_count(engine)  # the test's database holds this feed only
    windows = [window_total(engine, size, "all") for size in WINDOW_SIZES]
    over = max(w - rows for w in windows)
    under = max(rows - w for w in windows)
    return Accounting(
        run=run,
        produced=len(feed.ids),
        stored=len(stored),
        dead_lettered=len(set(dead) & feed.ids),
        duplicates=max(over, 0) + len(stored & set(dead)),
        lost=len(feed.ids - stored - set(dead)) + max(under, 0),
        misrouted=len(stored - feed.to_store) + len(set(dead) & feed.to_store),
        unpublished=len(stored - set(published)),
        redelivered=len(published) - len(set(published)) + len(dead) - len(set(dead)),
    )


def wait_until_accounted(
    feed: Feed,
    engine: Engine,
    worker: WorkerHarness,
    timeout: float = 300,
    bootstrap: str = KAFKA_BOOTSTRAP,
) -> None:
    """Wait until every id is stored (and published) or dead-lettered by `worker`'s
    deployment; if not in time, the failure says where each missing id is."""

    def missing() -> set[str]:
        dead = set(_ids(read_topic(worker.dlq_topic, bootstrap=bootstrap)))
        return feed.ids - _stored_ids(engine, feed.ids) - dead

    def settled() -> bool:
        if missing():
            return False
        stored = _stored_ids(engine, feed.ids)
        return not stored - set(_ids(read_topic(worker.output_topic, bootstrap=bootstrap)))

    def progress() -> str:
        stored = _stored_ids(engine, feed.ids)
        dead = set(_ids(read_topic(worker.dlq_topic, bootstrap=bootstrap)))
        return f"{len(stored)} stored, {len(dead)} dead-lettered of {feed.n}"

    try:
        wait_for(settled, timeout, "every id stored or dead-lettered", every=1.0)
    except AssertionError as exc:
        where = whereabouts(sorted(missing()), worker.input_topic, worker.group, bootstrap)
        raise AssertionError(f"{exc}: {progress()}{where}") from None


def whereabouts(ids: Sequence[str], input_topic: str, group: str, bootstrap: str) -> str:
    """Where ids that were neither stored nor dead-lettered are: their partition and offset
    in the input topic (or not there at all: the producer lost them), against the group's
    committed offset of that partition (past it: a worker committed a record it never
    finished; not yet: it is still to be processed)."""
    if not ids:
        return ""
    wanted = set(ids)
    found = {
        doc_id: (record.partition, record.offset)
        for record in read_topic(input_topic, bootstrap=bootstrap)
        for doc_id in _ids([record])
        if doc_id in wanted
    }
    reader = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False
    )
    try:  # reads the group's offsets without joining it
        partitions = {partition for partition, _ in found.values()}
        committed = {p: reader.committed(TopicPartition(input_topic, p)) for p in partitions}
    finally:
        reader.close()
    lines = []
    for doc_id in ids[:20]:
        if doc_id not in found:
            lines.append(f"{doc_id}: not in {input_topic}")
            continue
        partition, offset = found[doc_id]
        at = committed.get(partition)
        verdict = (
            "never committed"
            if at is None
            else ("committed past it" if at > offset else f"not yet committed (group at {at})")
        )
        lines.append(f"{doc_id}: partition {partition} offset {offset}, {verdict}")
    return "\n  missing: " + "\n  missing: ".join(lines)
