"""Phase 1, sustained throughput: a backlog produced before the worker starts, then rows
stored per second over `duration_s` after `warmup_s`, read from PostgreSQL."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from tqdm import tqdm

from bench.end_to_end.measures import metrics_share, worker_metrics
from bench.end_to_end.results import EndToEndResult
from bench.workload import encode
from harness.worker import produce

if TYPE_CHECKING:
    from bench.end_to_end.run import EndToEnd

BACKLOG_MARGIN = 1.3
"""Backlog = expected rate x (warm-up + duration) x this, so the worker never runs dry."""


def produce_backlog(run: EndToEnd, result: EndToEndResult) -> None:
    """Produce the backlog before the worker starts, so it never runs dry and the producer
    does not compete with it while it is measured."""
    cfg = run.config
    result.backlog = math.ceil(
        cfg.expected_items_per_s * (cfg.warmup_s + cfg.duration_s) * BACKLOG_MARGIN
    )
    docs = run.workload.messages(f"{run.run_id}-b", result.backlog)
    started = time.monotonic()
    produce(
        run.worker.input_topic,
        tqdm(
            (encode(d) for d in docs),
            total=result.backlog,
            desc="produce backlog",
            unit="msg",
            disable=not cfg.progress,
        ),
    )
    result.produce_backlog_s = time.monotonic() - started


def measure_sustained(run: EndToEnd, result: EndToEndResult) -> None:
    """Rows stored per second over `duration_s`, after `warmup_s` from the first row."""
    cfg = run.config
    with tqdm(
        total=result.backlog, desc="worker: backlog", unit="row", disable=not cfg.progress
    ) as bar:
        first = run.wait_stored(1, "the first stored row", bar)
        warm = run.wait_until(first.at + cfg.warmup_s, bar)
        metrics_before, cpu_before = worker_metrics(run.worker), run.cpu_seconds()
        end = run.wait_until(warm.at + cfg.duration_s, bar)
        metrics_after, cpu_after = worker_metrics(run.worker), run.cpu_seconds()
        run.wait_stored(result.backlog, "the backlog to drain", bar)
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
