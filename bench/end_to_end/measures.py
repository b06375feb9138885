"""Figures from a running worker: its /metrics, its memory, latency percentiles."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from harness.worker import WorkerHarness


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
