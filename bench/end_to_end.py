"""End to end: the real broker, a real `finmon worker` process and PostgreSQL.

Two phases against one worker, on a fresh topic set and consumer group (`WorkerHarness`):

1. Sustained throughput. A backlog is produced *before* the worker starts, so the worker is
   never starved and the producer does not compete for the CPU while it is measured. Rows
   stored per second are read from PostgreSQL (the windows are written in the same
   transaction) over `duration_s` after a warm-up.
2. Latency at half load. Messages are produced at half the sustained rate, each with its
   produce time, once the backlog has drained. The latency of an item is from its produce
   call to the timestamp of its record on the output topic, which the worker writes only
   after the item's transaction committed: an upper bound on "produce to row stored" that
   needs no polling. `received_at` (when the worker started the item's batch) splits it into
   waiting for a batch and processing it.

The worker's peak RSS is the kernel high-water mark (VmHWM) of the worker and of every process
it started (the inference process), summed, read just before it is stopped: an upper bound of
the pair's peak. Its /metrics give the share of batch time spent in inference.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, make_url, select, text
from tqdm import tqdm

from bench.workload import Workload, encode
from harness.stack import KAFKA_BOOTSTRAP, port_open
from harness.worker import (
    WorkerHarness,
    consume,
    produce,
    stored_count,
    window_total,
)
from monitor.db.engine import make_engine, upgrade
from monitor.db.models import NewsItemRow
from monitor.settings import KafkaSettings
from pipelines.topics import ensure_topics

DEFAULT_PG_URL = "postgresql+psycopg://finmon:finmon@127.0.0.1:5432/finmon_bench"
BACKLOG_MARGIN = 1.3
"""Backlog = expected rate x (warm-up + duration) x this, so the worker never runs dry."""
STALL_S = 90.0
"""Give up when no row is stored for this long."""
PACED_LINGER_MS = 20
"""The half-load producer lets the client gather records for up to this long: sending each
record alone, the load generator took a third of a core at 100 records/s on the 2-vCPU
machine, beside the worker it measures (17 % with this). An item's latency still runs
from its `send` call, so the linger counts against finmon, not for it."""


@dataclass(frozen=True, slots=True)
class EndToEndConfig:
    pg_url: str
    batch_size: int
    max_wait_ms: int
    threads: int
    cpu_parallelism: str
    device: str
    model_path: Path | None
    duration_s: float
    warmup_s: float
    paced_s: float
    expected_items_per_s: float
    log_dir: Path
    progress: bool = True
    samples_out: Path | None = None
    """When set, the worker runs under `bench.sampled_worker`, writing its samples here."""


@dataclass(slots=True)
class Sample:
    at: float
    stored: int
    rss: int


@dataclass(slots=True)
class EndToEndResult:
    config: dict[str, Any]
    startup_s: float = 0.0
    backlog: int = 0
    produce_backlog_s: float = 0.0
    sustained: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    worker_metrics: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    worker_log: str = ""

    @property
    def items_per_s(self) -> float:
        return float(self.sustained.get("items_per_s", 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "startup_s": round(self.startup_s, 1),
            "backlog": self.backlog,
            "produce_backlog_s": round(self.produce_backlog_s, 1),
            "sustained": self.sustained,
            "latency": self.latency,
            "memory": self.memory,
            "worker_metrics": self.worker_metrics,
            "checks": self.checks,
            "worker_log": self.worker_log,
        }


def prepare_database(url: str) -> Engine:
    """Create the benchmark database if needed, migrate it, and empty it.

    A database of its own (not `finmon_test`, which the test suite truncates after every
    test) so tests running meanwhile neither disturb the counts nor see the benchmark's rows.
    """
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = target.database
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                conn.execute(
                    text(f"CREATE DATABASE {conn.dialect.identifier_preparer.quote(name)}")
                )
    finally:
        admin.dispose()
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        tables = conn.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'alembic_version'"
            )
        ).all()
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
    return engine


def worker_metrics(worker: WorkerHarness) -> dict[str, float]:
    """The worker's counters and histogram sums from /metrics (empty if not reachable)."""
    status, body = worker.get("/metrics")
    if status != 200:
        return {}
    wanted = {
        "finmon_inference_duration_seconds_sum",
        "finmon_inference_duration_seconds_count",
        "finmon_batch_duration_seconds_sum",
        "finmon_batch_duration_seconds_count",
        "finmon_batch_size_messages_sum",
        "finmon_messages_stored_total",
    }
    return {
        s.name: float(s.value)
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name in wanted
    }


def metrics_share(
    before: dict[str, float], after: dict[str, float], wall_s: float
) -> dict[str, float]:
    """Where the worker's time went between two /metrics scrapes.

    The shares are summed durations over wall time, so they count overlap: a share of 1.9
    for inference means that nearly all the time two classifier calls were outstanding (one
    running, a full batch queued behind it); batch time includes waiting for the previous
    batch to be stored."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    batches = delta("finmon_batch_duration_seconds_count")
    if not batches or not wall_s:
        return {}
    inference = delta("finmon_inference_duration_seconds_sum")
    batch = delta("finmon_batch_duration_seconds_sum")
    return {
        "batches": int(batches),
        "mean_batch_size": round(delta("finmon_batch_size_messages_sum") / batches, 1),
        "inference_share": round(inference / wall_s, 3),
        "batch_share": round(batch / wall_s, 3),
        "mean_batch_ms": round(1000 * batch / batches, 1),
        "mean_inference_ms": round(1000 * inference / batches, 1),
    }


def peak_rss(pid: int) -> int:
    """The process's resident-set high-water mark in bytes (VmHWM), 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_tree(process: psutil.Process) -> list[psutil.Process]:
    """`process` and every process it started (the worker's inference process)."""
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def tree_rss(process: psutil.Process) -> int:
    """Current RSS of `process` and its descendants, in bytes."""
    total = 0
    for member in process_tree(process):
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "n": len(values),
        "p50_ms": round(1000 * float(p50), 1),
        "p95_ms": round(1000 * float(p95), 1),
        "p99_ms": round(1000 * float(p99), 1),
        "max_ms": round(1000 * max(values), 1),
    }


class SampledWorkerHarness(WorkerHarness):
    """The same worker, started under the all-threads sampler (`bench.sampled_worker`)."""

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.sampled_worker"]


class EndToEnd:
    """One worker, its topics and the benchmark database, for both phases."""

    def __init__(self, workload: Workload, config: EndToEndConfig) -> None:
        self.workload = workload
        self.config = config
        self.run_id = f"bench-{uuid.uuid4().hex[:8]}"
        env = {
            "FINMON_DATABASE__URL": config.pg_url,
            "FINMON_BATCHING__MAX_BATCH_SIZE": str(config.batch_size),
            "FINMON_BATCHING__MAX_WAIT_MS": str(config.max_wait_ms),
            "FINMON_MODEL__THREADS": str(config.threads),
            "FINMON_MODEL__CPU_PARALLELISM": config.cpu_parallelism,
            "FINMON_MODEL__DEVICE": config.device,
        }
        if config.model_path is not None:
            env["FINMON_MODEL__PATH"] = str(config.model_path.resolve())
        config.log_dir.mkdir(parents=True, exist_ok=True)
        if config.samples_out is not None:
            env["FINMON_BENCH_SAMPLES"] = str(config.samples_out.resolve())
            self.worker: WorkerHarness = SampledWorkerHarness(config.log_dir, "bench", **env)
        else:
            self.worker = WorkerHarness(config.log_dir, "bench", **env)
        self.engine: Engine | None = None
        self.samples: list[Sample] = []
        self.process: psutil.Process | None = None

    # -- helpers -------------------------------------------------------------------------

    def _stored(self) -> int:
        assert self.engine is not None
        return stored_count(self.engine)

    def _sample(self) -> Sample:
        rss = tree_rss(self.process) if self.process is not None else 0
        sample = Sample(time.monotonic(), self._stored(), rss)
        self.samples.append(sample)
        return sample

    def _wait_stored(self, target: int, what: str, bar: tqdm | None = None) -> Sample:
        """Poll (1/s) until `target` rows are stored; fail if nothing moves for STALL_S."""
        last = self._sample()
        moved = last.at
        while last.stored < target:
            time.sleep(1.0)
            self._check_alive()
            current = self._sample()
            if bar is not None:
                bar.update(current.stored - last.stored)
            if current.stored > last.stored:
                moved = current.at
            elif current.at - moved > STALL_S:
                raise RuntimeError(
                    f"no progress for {STALL_S:.0f}s waiting for {what} "
                    f"({current.stored}/{target}); worker log: {self.worker.log_path}"
                )
            last = current
        return last

    def _check_alive(self) -> None:
        proc = self.worker.process
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}; log: {self.worker.log_path}")

    # -- phases --------------------------------------------------------------------------

    def run(self) -> EndToEndResult:
        cfg = self.config
        result = EndToEndResult(
            config={
                "batch_size": cfg.batch_size,
                "max_wait_ms": cfg.max_wait_ms,
                "threads": cfg.threads,
                "cpu_parallelism": cfg.cpu_parallelism,
                "device": cfg.device,
                "duration_s": cfg.duration_s,
                "warmup_s": cfg.warmup_s,
                "paced_s": cfg.paced_s,
                "database": make_url(cfg.pg_url).render_as_string(hide_password=True),
                "kafka": KAFKA_BOOTSTRAP,
                "input_topic": self.worker.input_topic,
                "sampled": cfg.samples_out is not None,
            },
            worker_log=str(self.worker.log_path),
        )
        self.engine = prepare_database(cfg.pg_url)
        try:
            ensure_topics(
                KafkaSettings(
                    bootstrap_servers=[KAFKA_BOOTSTRAP],
                    input_topic=self.worker.input_topic,
                    output_topic=self.worker.output_topic,
                    dead_letter_topic=self.worker.dlq_topic,
                )
            )
            self._produce_backlog(result)
            started = time.monotonic()
            self.worker.start()
            result.startup_s = time.monotonic() - started
            assert self.worker.process is not None
            self.process = psutil.Process(self.worker.process.pid)
            self._sustained(result)
            self._paced(result)
            self._finish(result)
        finally:
            if self.worker.process is not None and self.worker.process.poll() is None:
                self.worker.stop(signal.SIGKILL)
            self.engine.dispose()
        return result

    def _produce_backlog(self, result: EndToEndResult) -> None:
        cfg = self.config
        result.backlog = math.ceil(
            cfg.expected_items_per_s * (cfg.warmup_s + cfg.duration_s) * BACKLOG_MARGIN
        )
        docs = self.workload.messages(f"{self.run_id}-b", result.backlog)
        started = time.monotonic()
        produce(
            self.worker.input_topic,
            tqdm(
                (encode(d) for d in docs),
                total=result.backlog,
                desc="produce backlog",
                unit="msg",
                disable=not cfg.progress,
            ),
        )
        result.produce_backlog_s = time.monotonic() - started

    def _sustained(self, result: EndToEndResult) -> None:
        """Rows stored per second over `duration_s`, after `warmup_s` from the first row."""
        cfg = self.config
        with tqdm(
            total=result.backlog, desc="worker: backlog", unit="row", disable=not cfg.progress
        ) as bar:
            first = self._wait_stored(1, "the first stored row", bar)
            warm = self._wait_until(first.at + cfg.warmup_s, bar)
            metrics_before, cpu_before = worker_metrics(self.worker), self._cpu_seconds()
            end = self._wait_until(warm.at + cfg.duration_s, bar)
            metrics_after, cpu_after = worker_metrics(self.worker), self._cpu_seconds()
            self._wait_stored(result.backlog, "the backlog to drain", bar)
        window = end.at - warm.at
        drained = end.stored >= result.backlog
        result.sustained = {
            "items": end.stored - warm.stored,
            "seconds": round(window, 1),
            "items_per_s": round((end.stored - warm.stored) / window, 1),
            "backlog_left_at_end": result.backlog - end.stored,
            "valid": not drained and window >= 30,
            "worker_cpu_percent": round(100 * (cpu_after - cpu_before) / window, 1),
        }
        result.worker_metrics = metrics_share(metrics_before, metrics_after, window)

    def _wait_until(self, deadline: float, bar: tqdm) -> Sample:
        """Sample once a second until `deadline` (monotonic) or the backlog is exhausted."""
        last = self.samples[-1]
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))
            self._check_alive()
            current = self._sample()
            bar.update(current.stored - last.stored)
            last = current
        return last

    def _cpu_seconds(self) -> float:
        """CPU time the worker has used so far (user + system, all threads)."""
        if self.process is None:
            return 0.0
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def _paced(self, result: EndToEndResult) -> None:
        """Produce at half the sustained rate and measure produce → stored latencies."""
        cfg = self.config
        rate = max(result.items_per_s / 2, 1.0)
        count = max(int(rate * cfg.paced_s), 1)
        produced_at: dict[str, float] = {}

        def paced() -> Iterator[bytes]:
            start = time.time()
            for i, doc in enumerate(self.workload.messages(f"{self.run_id}-p", count)):
                delay = start + i / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                now = time.time()
                doc["published_at"] = _iso(now)
                doc["bench_produced_at"] = now
                produced_at[str(doc["id"])] = now
                yield encode(doc)

        base = self._stored()
        with tqdm(
            total=count, desc="paced (half load)", unit="msg", disable=not cfg.progress
        ) as bar:
            produce(self.worker.input_topic, _counted(paced(), bar), linger_ms=PACED_LINGER_MS)
        self._wait_stored(base + count, "the paced items")

        out = consume(self.worker.output_topic, result.backlog + count, timeout=120)
        stored_at = {r.key.decode(): r.timestamp / 1000 for r in out if r.key is not None}
        assert self.engine is not None
        with self.engine.connect() as conn:
            received = dict(
                conn.execute(
                    select(NewsItemRow.id, NewsItemRow.received_at).where(
                        NewsItemRow.id.like(f"{self.run_id}-p-%")
                    )
                ).all()
            )
        total = [stored_at[i] - t for i, t in produced_at.items() if i in stored_at]
        waiting = [received[i].timestamp() - t for i, t in produced_at.items() if i in received]
        processing = [
            stored_at[i] - received[i].timestamp()
            for i in produced_at
            if i in stored_at and i in received
        ]
        result.latency = {
            "rate_per_s": round(rate, 1),
            "items": count,
            "produce_to_stored": percentiles(total),
            "produce_to_batch_start": percentiles(waiting),
            "batch_start_to_stored": percentiles(processing),
            "missing": count - len(total),
        }

    def _finish(self, result: EndToEndResult) -> None:
        """Peak memory, the exactly-once window check, and a clean stop."""
        assert self.engine is not None and self.worker.process is not None
        tree = process_tree(psutil.Process(self.worker.process.pid))
        result.memory = {
            "worker_peak_rss_bytes": sum(peak_rss(p.pid) for p in tree),
            "worker_peak_rss_by_process": {str(p.pid): peak_rss(p.pid) for p in tree},
            "worker_max_sampled_rss_bytes": max((s.rss for s in self.samples), default=0),
        }
        stored = self._stored()
        sizes = self._window_sizes()
        result.checks = {
            "stored_rows": stored,
            "window_totals_match": all(
                window_total(self.engine, seconds) == stored for seconds in sizes
            ),
            "window_sizes_s": sizes,
            "worker_exit_code": self.worker.stop(),
        }

    def _window_sizes(self) -> list[int]:
        assert self.engine is not None
        with self.engine.connect() as conn:
            return list(
                conn.scalars(text("SELECT DISTINCT window_seconds FROM trend_windows ORDER BY 1"))
            )


def _counted(values: Iterator[bytes], bar: tqdm) -> Iterator[bytes]:
    for value in values:
        bar.update()
        yield value


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def require_stack(pg_url: str) -> None:
    """Fail with the fix in the message when the broker or the database is not reachable."""
    pg = make_url(pg_url)
    kafka_host, _, kafka_port = KAFKA_BOOTSTRAP.rpartition(":")
    missing = [
        name
        for name, host, port in (
            ("PostgreSQL", pg.host or "127.0.0.1", pg.port or 5432),
            ("Kafka", kafka_host, int(kafka_port)),
        )
        if not port_open(host, port)
    ]
    if missing:
        raise SystemExit(
            f"{' and '.join(missing)} not reachable: start the stack with "
            "`bash scripts/stack.sh up` (or skip this phase with --skip e2e)"
        )


def run_end_to_end(workload: Workload, config: EndToEndConfig) -> EndToEndResult:
    """Both phases against one fresh worker; the worker is always stopped at the end."""
    require_stack(config.pg_url)
    return EndToEnd(workload, config).run()
