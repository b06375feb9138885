"""`python -m bench.soak`: two workers on the cluster for 30 minutes at half load.

Opt-in, never in CI (docs/reliability.md, "Soak"). Two `finmon worker` processes (the
configured model; `--keyword` for the keyword classifier double) share the 6 partitions of a
replicated input topic on the 3-broker cluster (`scripts/stack.sh cluster up`) while a paced
producer sends `--rate` items per second (default 100: about half of what one worker does end
to end on the 2-core machine, docs/performance.md). Every `--every` seconds it samples, per worker
(with its inference process): RSS, open file descriptors, and the consumer lag it reports.

At the end it writes bench/results/soak-<time>.{csv,json,png} (the chart: RSS, descriptors
and lag over time) and judges the targets (`verdict`), exiting 1 if one is missed:

* RSS grows less than 5 % from the end of the warm-up (5 minutes) to the end;
* no descriptor growth: the mean over the last 5 minutes is at most the mean over the 5
  minutes after the warm-up plus 2 (sockets to brokers come and go);
* lag bounded: after the warm-up the lag never exceeds 30 seconds of input.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench.end_to_end import prepare_database
from bench.workload import Workload, encode
from harness.worker import KeywordWorkerHarness, WorkerHarness
from monitor.settings import KafkaSettings
from pipelines.topics import ensure_topics

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgresql+psycopg://finmon:finmon@127.0.0.1:5432/finmon_soak"


@dataclass(frozen=True)
class Sample:
    at_s: float
    worker: int
    rss_mb: float
    fds: int
    lag: float
    sent: int = 0
    """Messages the producer had sent by then (tells a quiet input from a caught-up one)."""


@dataclass(frozen=True)
class Verdict:
    rss_growth_pct: float
    fds_growth: float
    max_lag_after_warmup: float
    lag_limit: float
    passed: bool


def verdict(samples: Sequence[Sample], *, warmup_s: float, rate: float) -> Verdict:
    """Judge a soak run's samples (pure; see the module docstring for the targets)."""
    end = max(s.at_s for s in samples)

    def total(name: str, start: float, stop: float) -> float:
        """Mean over [start, stop] of the value summed over workers at each sample time."""
        by_time: dict[float, float] = {}
        for s in samples:
            if start <= s.at_s <= stop:
                by_time[s.at_s] = by_time.get(s.at_s, 0.0) + getattr(s, name)
        return statistics.mean(by_time.values()) if by_time else 0.0

    window = 60.0
    rss_start = total("rss_mb", warmup_s, warmup_s + window)
    rss_end = total("rss_mb", end - window, end)
    rss_growth = 100 * (rss_end - rss_start) / rss_start if rss_start else 0.0
    fds_growth = total("fds", end - 300, end) - total("fds", warmup_s, warmup_s + 300)
    lags: dict[float, float] = {}
    for s in samples:
        if s.at_s >= warmup_s:
            lags[s.at_s] = lags.get(s.at_s, 0.0) + s.lag
    max_lag = max(lags.values(), default=0.0)
    limit = 30 * rate
    passed = rss_growth < 5 and fds_growth <= 2 and max_lag <= limit
    return Verdict(rss_growth, fds_growth, max_lag, limit, passed)


def tree_usage(pid: int) -> tuple[float, int]:
    """RSS (MB) and open descriptors of a process and its children (the inference process)."""
    rss, fds = 0, 0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                rss += proc.memory_info().rss
                fds += proc.num_fds()
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        pass
    return rss / 1e6, fds


def lag_of(worker: WorkerHarness) -> float:
    status, body = worker.get("/metrics")
    if status != 200:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        if family.name == "finmon_consumer_lag"
        for sample in family.samples
    )


class Feeder(threading.Thread):
    """Sends the workload at `rate` per second until stopped (ids unique to the run)."""

    def __init__(self, topic: str, bootstrap: str, rate: float, workload: Workload) -> None:
        super().__init__(name="soak-feeder", daemon=True)
        self.topic, self.bootstrap, self.rate, self.workload = topic, bootstrap, rate, workload
        self.sent = 0
        self.halt = threading.Event()

    def run(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap.split(","),
            acks="all",
            enable_idempotence=True,
            linger_ms=20,
        )
        started = time.monotonic()
        try:
            while not self.halt.is_set():
                for doc in self.workload.messages("soak", 50, offset=self.sent):
                    producer.send(self.topic, key=doc["id"].encode(), value=encode(doc))
                self.sent += 50
                time.sleep(max(0.0, started + self.sent / self.rate - time.monotonic()))
            producer.flush()
        finally:
            producer.close()


def chart(samples: Sequence[Sample], path: Path, warmup_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    workers = sorted({s.worker for s in samples})
    for ax, (name, label) in zip(
        axes,
        (
            ("rss_mb", "RSS (MB, with its model process)"),
            ("fds", "open descriptors"),
            ("lag", "consumer lag (messages)"),
        ),
        strict=True,
    ):
        for w in workers:
            mine = [s for s in samples if s.worker == w]
            ax.plot(
                [s.at_s / 60 for s in mine], [getattr(s, name) for s in mine], label=f"worker {w}"
            )
        ax.axvline(warmup_s / 60, color="grey", linestyle=":", linewidth=1)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[-1].set_xlabel("minutes (dotted: end of warm-up)")
    fig.suptitle("finmon soak: two workers on the 3-broker cluster")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--warmup-minutes", type=float, default=5)
    p.add_argument("--rate", type=float, default=100, help="items per second")
    p.add_argument("--every", type=float, default=10, help="seconds between samples")
    p.add_argument("--keyword", action="store_true", help="the keyword double, not the model")
    p.add_argument("--pg-url", default=os.environ.get("FINMON_SOAK_PG_URL", DEFAULT_PG_URL))
    p.add_argument(
        "--bootstrap",
        default=os.environ.get(
            "FINMON_TEST_KAFKA_CLUSTER", "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
        ),
    )
    args = p.parse_args(argv)
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    logs = RESULTS_DIR / f"soak-{stamp}-logs"
    logs.mkdir()
    engine = prepare_database(args.pg_url)
    engine.dispose()
    env = {
        "FINMON_KAFKA__BOOTSTRAP_SERVERS": json.dumps(args.bootstrap.split(",")),
        "FINMON_KAFKA__INPUT_PARTITIONS": "6",
        "FINMON_DATABASE__URL": args.pg_url,
    }
    kind = KeywordWorkerHarness if args.keyword else WorkerHarness
    first = kind(logs, "soak", **env)
    workers = [first, kind(logs, "soak-2", **env).share(first)]
    ensure_topics(
        KafkaSettings(
            bootstrap_servers=args.bootstrap.split(","),
            input_topic=first.input_topic,
            output_topic=first.output_topic,
            dead_letter_topic=first.dlq_topic,
            input_partitions=6,
        )
    )
    samples: list[Sample] = []
    feeder = Feeder(first.input_topic, args.bootstrap, args.rate, Workload.generate(4096))
    try:
        for worker in workers:
            worker.start(wait=False)
        for worker in workers:
            worker.wait_ready(300)
        feeder.start()
        began = time.monotonic()
        print(f"soak: {args.minutes} min at {args.rate}/s, two workers; logs in {logs}")
        while (elapsed := time.monotonic() - began) < args.minutes * 60:
            for index, worker in enumerate(workers):
                assert worker.process is not None
                if worker.process.poll() is not None:
                    raise SystemExit(f"worker {index} exited with {worker.process.returncode}")
                rss, fds = tree_usage(worker.process.pid)
                at = round(elapsed, 1)
                samples.append(Sample(at, index, rss, fds, lag_of(worker), feeder.sent))
            if int(elapsed) // 60 != int(elapsed - args.every) // 60:
                now = [s for s in samples if s.at_s == samples[-1].at_s]
                print(
                    f"  {elapsed / 60:5.1f} min: sent {feeder.sent}, RSS "
                    f"{sum(s.rss_mb for s in now):.0f} MB, fds {sum(s.fds for s in now)}, "
                    f"lag {sum(s.lag for s in now):.0f}",
                    flush=True,
                )
            time.sleep(args.every)
    finally:
        feeder.halt.set()
        for worker in workers:
            if worker.process is not None:
                worker.stop(signal.SIGTERM)
    base = RESULTS_DIR / f"soak-{stamp}"
    with base.with_suffix(".csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(asdict(samples[0])))
        writer.writeheader()
        writer.writerows(asdict(s) for s in samples)
    judged = verdict(samples, warmup_s=args.warmup_minutes * 60, rate=args.rate)
    chart(samples, base.with_suffix(".png"), args.warmup_minutes * 60)
    base.with_suffix(".json").write_text(
        json.dumps(
            {
                "args": {k: v for k, v in vars(args).items() if k != "pg_url"},
                "sent": feeder.sent,
                "verdict": asdict(judged),
            },
            indent=2,
        )
    )
    print(
        f"RSS growth after warm-up {judged.rss_growth_pct:+.1f} % (target < 5 %), descriptors "
        f"{judged.fds_growth:+.1f} (target <= 2), max lag {judged.max_lag_after_warmup:.0f} "
        f"(limit {judged.lag_limit:.0f}): {'PASS' if judged.passed else 'FAIL'}; "
        f"chart {base.with_suffix('.png')}"
    )
    return 0 if judged.passed else 1


if __name__ == "__main__":
    sys.exit(main())
