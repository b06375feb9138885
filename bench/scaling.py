"""`python -m bench.scaling`: what limits finmon when it runs as several workers.

Two measurements, each printing ratios taken within one run (docs/deployment.md, "Scaling"):

* `writers`: PostgreSQL's cost of storing batches with 1, 2 and 4 concurrent writers (one
  process each, as workers are), with no model and no Kafka: the ceiling the database puts on
  any number of workers. Two layouts: `hot`, every writer's items in the same current
  windows and tickers (a live feed: every batch of every worker adds to the same `all`
  rows of the current minute, five minutes and hour, which one transaction at a time can
  update), and `spread`, each writer in windows and tickers of its own (no shared row).
* `workers`: 1, 2 and 4 workers (the real daemon with the keyword classifier double, the
  model left out as in the cluster tests) draining the same backlog from a Kafka topic:
  items/s in all and per worker, from the first item stored to the last.

Both need PostgreSQL (`scripts/stack.sh up`); `workers` a broker, by default the 3-broker
cluster (`scripts/stack.sh cluster up`). Results go to stdout and a JSON file under
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from kafka import KafkaProducer
from sqlalchemy import Engine, func, select

from bench.end_to_end import prepare_database
from bench.workload import Workload, encode
from harness.worker import KeywordWorkerHarness, wait_for
from monitor.contract import IngestPolicy, NewsItem, decode_news
from monitor.db.engine import make_engine
from monitor.db.models import NewsItemRow
from monitor.db.store import NewsStore
from monitor.model.interface import Classification
from monitor.pipeline_types import ClassifiedItem
from monitor.settings import KafkaSettings
from pipelines.topics import ensure_topics

R = TypeVar("R", "WriterResult", "WorkerResult")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgresql+psycopg://finmon:finmon@127.0.0.1:5432/finmon_bench_scaling"
WINDOW_SIZES = [timedelta(minutes=1), timedelta(minutes=5), timedelta(hours=1)]
HEADLINES = (
    "${t} shares jump 6% after beating quarterly earnings estimates",
    "${t} plunges after regulators open a probe",
    "${t} declares quarterly dividend",
)


# -- writers ----------------------------------------------------------------------------------


def _items(writer: int, batches: int, batch_size: int, layout: str) -> list[list[ClassifiedItem]]:
    """Pre-classified batches for one writer: unique ids, three tickers per item; `hot`
    items all in the current windows and on tickers every writer shares, `spread` ones on
    the writer's own tickers and in its own hour, so no window row is shared."""
    now = datetime.now(UTC)
    hour = now - timedelta(hours=2 + writer) if layout == "spread" else now
    tickers = [f"W{writer}T{k}" if layout == "spread" else f"HOT{k}" for k in range(12)]
    out = []
    for b in range(batches):
        raws = []
        for i in range(batch_size):
            n = b * batch_size + i
            ticker = tickers[n % len(tickers)]
            doc = {
                "id": f"scale-{layout}-{writer}-{n}",
                "published_at": (hour - timedelta(seconds=n % 50)).isoformat(),
                "headline": HEADLINES[n % len(HEADLINES)].format(t=ticker),
                "tickers": [tickers[(n + 1) % len(tickers)], tickers[(n + 2) % len(tickers)]],
            }
            raws.append(json.dumps(doc).encode())
        items = [decode_news(r, now=now, policy=IngestPolicy()) for r in raws]
        news = [i for i in items if isinstance(i, NewsItem)]
        out.append([ClassifiedItem(item, _verdict(n)) for n, item in enumerate(news)])
    return out


def _verdict(n: int) -> Classification:
    """A fixed verdict per headline kind (bullish, bearish, neutral): the store's cost does
    not depend on which, and no model runs in this benchmark."""
    sentiment = ("bullish", "bearish", "neutral")[n % 3]
    probs = {s: (0.8 if s == sentiment else 0.1) for s in ("bearish", "neutral", "bullish")}
    return Classification(
        topic="Stock Movement",
        topic_confidence=0.7,
        sentiment=sentiment,
        sentiment_score=probs["bullish"] - probs["bearish"],
        sentiment_probs=probs,
        model_version="bench-scaling",
    )


def _writer(
    url: str, writer: int, batches: int, batch_size: int, layout: str, start_at: float
) -> dict:
    engine = make_engine(url, pool_size=1)
    store = NewsStore(engine, WINDOW_SIZES)
    prepared = _items(writer, batches, batch_size, layout)
    with engine.connect() as conn:  # connect before the start line, not on the clock
        conn.exec_driver_sql("SELECT 1")
    time.sleep(max(start_at - time.time(), 0))  # all writers start together
    began = time.perf_counter()
    latencies = []
    for batch in prepared:
        t0 = time.perf_counter()
        store.store(batch)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - began
    engine.dispose()
    return {"items": batches * batch_size, "elapsed_s": elapsed, "latencies": latencies}


@dataclass(frozen=True)
class WriterResult:
    layout: str
    writers: int
    items_per_s: float
    per_writer_items_per_s: float
    batch_ms_p50: float
    batch_ms_p95: float
    runs: tuple[float, ...] = ()
    """items/s in all of every repeat (the median one is reported)."""


def _one_writer_run(
    engine: Engine, url: str, layout: str, writers: int, batches: int, batch_size: int
) -> WriterResult:
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE news_item_tickers, trend_windows, news_items CASCADE")
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 5 + 2 * writers  # every writer has built its batches
    with ctx.Pool(writers) as pool:
        pending = [
            pool.apply_async(_writer, (url, w, batches, batch_size, layout, start_at))
            for w in range(writers)
        ]
        done = [p.get(timeout=1800) for p in pending]
    wall = max(d["elapsed_s"] for d in done)
    latencies = sorted(x * 1000 for d in done for x in d["latencies"])
    return WriterResult(
        layout,
        writers,
        sum(d["items"] for d in done) / wall,
        statistics.mean(d["items"] / d["elapsed_s"] for d in done),
        statistics.median(latencies),
        latencies[int(0.95 * (len(latencies) - 1))],
    )


def measure_writers(
    url: str, counts: list[int], batches: int, batch_size: int, repeats: int
) -> list[WriterResult]:
    """Every (layout, writers) `repeats` times, interleaved (1, 2, 4, 1, 2, 4, ...) so a
    neighbour's burst on a shared machine hits every configuration alike; the median run of
    each is kept (by items/s in all)."""
    engine = prepare_database(url)
    runs: dict[tuple[str, int], list[WriterResult]] = {}
    try:
        for rep in range(repeats):
            for layout in ("hot", "spread"):
                for writers in counts:
                    r = _one_writer_run(engine, url, layout, writers, batches, batch_size)
                    runs.setdefault((layout, writers), []).append(r)
                    print(
                        f"[{rep + 1}/{repeats}] {layout:6} writers={writers}: "
                        f"{r.items_per_s:7.0f} items/s in all, {r.per_writer_items_per_s:6.0f} "
                        f"per writer, batch of {batch_size}: p50 {r.batch_ms_p50:.0f} ms, "
                        f"p95 {r.batch_ms_p95:.0f} ms",
                        flush=True,
                    )
    finally:
        engine.dispose()
    return [_median(found) for found in runs.values()]


def _median(found: list[R]) -> R:
    """The median run by items/s in all, carrying every run's figure."""
    median = sorted(found, key=lambda r: r.items_per_s)[len(found) // 2]
    return replace(median, runs=tuple(round(r.items_per_s) for r in found))


# -- workers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerResult:
    workers: int
    items: int
    items_per_s: float
    per_worker_items_per_s: float
    startup_s: float
    runs: tuple[float, ...] = ()
    """items/s in all of every repeat (the median one is reported)."""


def _one_workers_run(
    engine: Engine,
    url: str,
    count: int,
    docs: list[bytes],
    bootstrap: str,
    partitions: int,
    tmp: Path,
) -> WorkerResult:
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE news_item_tickers, trend_windows, news_items CASCADE")
    env = {
        "FINMON_KAFKA__BOOTSTRAP_SERVERS": json.dumps(bootstrap.split(",")),
        "FINMON_KAFKA__INPUT_PARTITIONS": str(partitions),
        "FINMON_DATABASE__URL": url,
        "FINMON_ALERTS__ENABLED": "false",
    }
    first = KeywordWorkerHarness(tmp, f"scale-{count}", **env)
    fleet = [first] + [
        KeywordWorkerHarness(tmp, f"scale-{count}-{i}", **env).share(first) for i in range(1, count)
    ]
    ensure_topics(
        KafkaSettings(
            bootstrap_servers=bootstrap.split(","),
            input_topic=first.input_topic,
            output_topic=first.output_topic,
            dead_letter_topic=first.dlq_topic,
            input_partitions=partitions,
        )
    )
    started = time.monotonic()
    try:
        for worker in fleet:
            worker.start(wait=False)
        for worker in fleet:
            worker.wait_ready(300)  # every worker has joined: the group is settled
        startup = time.monotonic() - started
        produce_backlog(first.input_topic, docs, bootstrap)

        def stored() -> int:
            with engine.connect() as conn:
                return conn.scalar(select(func.count()).select_from(NewsItemRow)) or 0

        wait_for(lambda: stored() >= len(docs), 1800, f"{len(docs)} stored", every=1)
    finally:
        for worker in fleet:
            worker.stop(signal.SIGTERM)
    with engine.connect() as conn:
        first_at, last_at = conn.execute(
            select(func.min(NewsItemRow.received_at), func.max(NewsItemRow.received_at))
        ).one()
    rate = len(docs) / max((last_at - first_at).total_seconds(), 1e-3)
    return WorkerResult(count, len(docs), rate, rate / count, startup)


def measure_workers(
    url: str,
    counts: list[int],
    backlog: int,
    bootstrap: str,
    partitions: int,
    tmp: Path,
    repeats: int,
) -> list[WorkerResult]:
    """Each worker count `repeats` times, interleaved; the median run of each is kept. The
    backlog is produced once every worker has joined, and timed from the first item stored
    to the last: the group's steady throughput, without start-up or rebalances."""
    engine = prepare_database(url)
    workload = Workload.generate(min(backlog, 4096))  # realistic headlines with cashtags
    runs: dict[int, list[WorkerResult]] = {}
    try:
        for rep in range(repeats):
            for count in counts:
                docs = [encode(d) for d in workload.messages(f"scale{rep}-{count}", backlog)]
                r = _one_workers_run(engine, url, count, docs, bootstrap, partitions, tmp)
                runs.setdefault(count, []).append(r)
                print(
                    f"[{rep + 1}/{repeats}] workers={count}: {r.items_per_s:6.0f} items/s in "
                    f"all, {r.per_worker_items_per_s:6.0f} per worker "
                    f"(start-up {r.startup_s:.0f} s)",
                    flush=True,
                )
    finally:
        engine.dispose()
    return [_median(found) for found in runs.values()]


def produce_backlog(topic: str, values: list[bytes], bootstrap: str) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","), acks="all", enable_idempotence=True, linger_ms=20
    )
    try:
        for value in values:
            producer.send(topic, value=value)
        producer.flush()
    finally:
        producer.close()


# -- command line -----------------------------------------------------------------------------


def _counts(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",") if x.strip()})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.scaling", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("what", choices=["writers", "workers", "all"])
    p.add_argument(
        "--pg-url", default=os.environ.get("FINMON_BENCH_SCALING_PG_URL", DEFAULT_PG_URL)
    )
    p.add_argument("--counts", type=_counts, default=[1, 2, 4], help="writers/workers, e.g. 1,2,4")
    p.add_argument("--batches", type=int, default=40, help="batches per writer")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each writer configuration (workers: one less)",
    )
    p.add_argument("--backlog", type=int, default=12000, help="messages the workers drain")
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument(
        "--bootstrap",
        default=os.environ.get(
            "FINMON_TEST_KAFKA_CLUSTER", "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
        ),
    )
    args = p.parse_args(argv)
    out: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "args": {k: v for k, v in vars(args).items() if k != "pg_url"},
    }
    if args.what in ("writers", "all"):
        found = measure_writers(
            args.pg_url, args.counts, args.batches, args.batch_size, args.repeats
        )
        out["writers"] = [asdict(r) for r in found]
        for layout in ("hot", "spread"):
            rows = [r for r in found if r.layout == layout]
            base = rows[0].items_per_s
            print(
                f"{layout}: items/s relative to {rows[0].writers} writer(s): "
                + ", ".join(f"{r.writers} -> {r.items_per_s / base:.2f}x" for r in rows)
            )
    if args.what in ("workers", "all"):
        tmp = RESULTS_DIR / "scaling-logs"
        tmp.mkdir(parents=True, exist_ok=True)
        found_w = measure_workers(
            args.pg_url,
            args.counts,
            args.backlog,
            args.bootstrap,
            args.partitions,
            tmp,
            max(args.repeats - 1, 1),
        )
        out["workers"] = [asdict(r) for r in found_w]
        base = found_w[0].items_per_s
        print(
            "workers: items/s relative to 1: "
            + ", ".join(f"{r.workers} -> {r.items_per_s / base:.2f}x" for r in found_w)
        )
    out["load_average_at_end"] = os.getloadavg()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"scaling-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
