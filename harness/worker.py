"""Running `finmon worker` as a real process against the real broker and PostgreSQL, and the
Kafka and database helpers the end-to-end tests and benchmarks use around it.

Each harness gets its own topics, consumer group and web port, so tests never see each
other's messages; the database is the shared `finmon_test`, emptied after every test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Self

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import Engine, func, select

from harness.stack import KAFKA_BOOTSTRAP, PG_URL
from monitor.db.models import NewsItemRow, TrendWindowRow

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll until `predicate()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class WorkerHarness:
    """One `finmon worker` subprocess with isolated topics; logs go to `log_path`."""

    def __init__(self, tmp_path: Path, name: str = "e2e", **env: str) -> None:
        suffix = f"{name}-{uuid.uuid4().hex[:8]}"
        self.input_topic = f"raw.{suffix}"
        self.output_topic = f"classified.{suffix}"
        self.dlq_topic = f"dlq.{suffix}"
        self.port = free_port()
        self.log_path = tmp_path / f"worker-{suffix}.log"
        self.env = {
            **os.environ,
            "FINMON_DATABASE__URL": PG_URL,
            "FINMON_KAFKA__BOOTSTRAP_SERVERS": json.dumps([KAFKA_BOOTSTRAP]),
            "FINMON_KAFKA__INPUT_TOPIC": self.input_topic,
            "FINMON_KAFKA__OUTPUT_TOPIC": self.output_topic,
            "FINMON_KAFKA__DEAD_LETTER_TOPIC": self.dlq_topic,
            "FINMON_KAFKA__CONSUMER_GROUP": f"group-{suffix}",
            "FINMON_WEB__PORT": str(self.port),
            "FINMON_BATCHING__MAX_WAIT_MS": "100",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "finmon", "worker"]

    def start(self, *, wait: bool = True) -> WorkerHarness:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        if wait:
            self.wait_ready()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, ""

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.process.returncode}:\n{self.logs()}"
                )
            return self.get("/ready")[0] == 200

        wait_for(ready, timeout, f"worker /ready (log: {self.log_path})")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` and wait for the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"worker ignored {sig!r} for {timeout}s:\n{self.logs()}"
                ) from None
        return self.process.returncode

    @property
    def group(self) -> str:
        """The consumer group of this worker's deployment."""
        return self.env["FINMON_KAFKA__CONSUMER_GROUP"]

    def share(self, other: WorkerHarness) -> Self:
        """Use `other`'s topics and consumer group: another worker of the same deployment."""
        self.input_topic, self.output_topic = other.input_topic, other.output_topic
        self.dlq_topic = other.dlq_topic
        for key in ("INPUT_TOPIC", "OUTPUT_TOPIC", "DEAD_LETTER_TOPIC", "CONSUMER_GROUP"):
            self.env[f"FINMON_KAFKA__{key}"] = other.env[f"FINMON_KAFKA__{key}"]
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> WorkerHarness:
        return self.start()

    def __exit__(self, *_: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop(signal.SIGKILL)


class KeywordWorkerHarness(WorkerHarness):
    """A worker with the keyword classifier double instead of the model
    (tests/keyword_worker.py): the real daemon at a fraction of a core, for tests that run
    several at once."""

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.keyword_worker"]


def produce(topic: str, values: Iterable[bytes], *, keyed: bool = True, linger_ms: int = 5) -> int:
    """Send `values` (keyed by their JSON `id` unless `keyed` is false); how many were sent.

    `linger_ms` lets the client gather records into fewer requests: on a 2-vCPU machine a
    paced producer sending each record alone took a third of a core at 100 records/s."""
    producer = KafkaProducer(bootstrap_servers=[KAFKA_BOOTSTRAP], acks="all", linger_ms=linger_ms)
    count = 0
    try:
        for value in values:
            key = None
            if keyed:
                try:
                    doc = json.loads(value)
                    key = str(doc.get("id")).encode() if isinstance(doc, dict) else None
                except ValueError:
                    key = None
            producer.send(topic, value=value, key=key)
            count += 1
        producer.flush()
    finally:
        producer.close()
    return count


def consume(topic: str, expected: int, timeout: float = 60) -> list[Any]:
    """Read `topic` from the start until `expected` records arrived (or time out)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[KAFKA_BOOTSTRAP],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            records.extend(consumer)
    finally:
        consumer.close()
    return records


def read_topic(topic: str, timeout: float = 60, bootstrap: str = KAFKA_BOOTSTRAP) -> list[Any]:
    """Every record in `topic` up to its end offsets as of now (nothing if it does not exist).

    Unlike `consume`, it needs no expected count: it stops at the log end, so a test can poll
    a topic whose final size it does not know (dead letters, redeliveries)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    records: list[Any] = []
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        if not partitions:
            return records
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s reading {topic} to its end")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def stored_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(NewsItemRow)) or 0


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(NewsItemRow.id)))


def window_total(engine: Engine, window_seconds: int, dimension: str = "all") -> int:
    with engine.connect() as conn:
        return (
            conn.scalar(
                select(func.coalesce(func.sum(TrendWindowRow.n_total), 0)).where(
                    TrendWindowRow.window_seconds == window_seconds,
                    TrendWindowRow.dimension == dimension,
                )
            )
            or 0
        )


def news(item_id: str, headline: str, minutes_ago: float = 5, **fields: Any) -> bytes:
    from datetime import UTC, datetime, timedelta

    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return json.dumps(
        {"id": item_id, "published_at": at.isoformat(), "headline": headline, **fields}
    ).encode()
