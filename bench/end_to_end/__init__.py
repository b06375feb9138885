"""End to end: the real broker, a real `finmon worker` process and PostgreSQL.

Two phases against one worker, on a fresh topic set and consumer group (`WorkerHarness`),
each in a module of its own:

1. Sustained throughput (`sustained.py`). A backlog is produced *before* the worker starts,
   so the worker is never starved and the producer does not compete for the CPU while it is
   measured. Rows stored per second are read from PostgreSQL (the windows are written in
   the same transaction) over `duration_s` after a warm-up.
2. Latency at half load (`half_load.py`). Messages are produced at half the sustained rate,
   each with its produce time, once the backlog has drained. The latency of an item is from
   its produce call to the timestamp of its record on the output topic, which the worker
   writes only after the item's transaction committed: an upper bound on "produce to row
   stored" that needs no polling. `received_at` (when the worker started the item's batch)
   splits it into waiting for a batch and processing it.

Then (`closing.py`) the worker's peak RSS: the kernel high-water mark (VmHWM) of the worker
and of every process it started (the inference process), summed, read just before it is
stopped, an upper bound of the pair's peak; the exactly-once window check; a clean SIGTERM
stop. `run.py` owns the worker and samples it; `measures.py` turns its /metrics and /proc
into figures (among them the share of batch time spent in inference).
"""

from __future__ import annotations

from bench.end_to_end.results import EndToEndConfig, EndToEndResult
from bench.end_to_end.run import EndToEnd
from bench.end_to_end.stack import DEFAULT_PG_URL, prepare_database, require_stack
from bench.workload import Workload

__all__ = [
    "DEFAULT_PG_URL",
    "EndToEndConfig",
    "EndToEndResult",
    "prepare_database",
    "run_end_to_end",
]


def run_end_to_end(workload: Workload, config: EndToEndConfig) -> EndToEndResult:
    """Both phases against one fresh worker; the worker is always stopped at the end."""
    require_stack(config.pg_url)
    return EndToEnd(workload, config).run()
