"""The end of a run: the worker's peak memory, the exactly-once window check, a clean stop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psutil
from sqlalchemy import text

from bench.end_to_end.measures import peak_rss, process_tree
from bench.end_to_end.results import EndToEndResult
from harness.worker import window_total

if TYPE_CHECKING:
    from bench.end_to_end.run import EndToEnd


def close_run(run: EndToEnd, result: EndToEndResult) -> None:
    """Peak memory, the exactly-once window check, and a clean stop."""
    assert run.engine is not None and run.worker.process is not None
    tree = process_tree(psutil.Process(run.worker.process.pid))
    result.memory = {
        "worker_peak_rss_bytes": sum(peak_rss(p.pid) for p in tree),
        "worker_peak_rss_by_process": {str(p.pid): peak_rss(p.pid) for p in tree},
        "worker_max_sampled_rss_bytes": max((s.rss for s in run.samples), default=0),
    }
    stored = run.stored()
    sizes = _window_sizes(run)
    result.checks = {
        "stored_rows": stored,
        "window_totals_match": all(
            window_total(run.engine, seconds) == stored for seconds in sizes
        ),
        "window_sizes_s": sizes,
        "worker_exit_code": run.worker.stop(),
    }


def _window_sizes(run: EndToEnd) -> list[int]:
    assert run.engine is not None
    with run.engine.connect() as conn:
        return list(
            conn.scalars(text("SELECT DISTINCT window_seconds FROM trend_windows ORDER BY 1"))
        )
