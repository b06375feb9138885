"""Phase 2, latency at half load: messages produced at half the sustained rate, each with its
produce time; an item's latency runs to the timestamp of its record on the output topic,
which the worker writes only after the item's transaction committed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from tqdm import tqdm

from bench.end_to_end.measures import percentiles
from bench.end_to_end.results import EndToEndResult
from bench.workload import encode
from harness.worker import consume, produce
from monitor.db.models import NewsItemRow

if TYPE_CHECKING:
    from bench.end_to_end.run import EndToEnd

PACED_LINGER_MS = 20
"""The half-load producer lets the client gather records for up to this long: sending each
record alone, the load generator took a large share of a core beside the worker it measures
(docs/performance.md). An item's latency still runs from its `send` call, so the linger
counts against finmon, not for it."""


def measure_half_load(run: EndToEnd, result: EndToEndResult) -> None:
    """Produce at half the sustained rate and measure produce → stored latencies."""
    cfg = run.config
    rate = max(result.items_per_s / 2, 1.0)
    count = max(int(rate * cfg.paced_s), 1)
    produced_at: dict[str, float] = {}

    def paced() -> Iterator[bytes]:
        start = time.time()
        for i, doc in enumerate(run.workload.messages(f"{run.run_id}-p", count)):
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            doc["published_at"] = _iso(now)
            doc["bench_produced_at"] = now
            produced_at[str(doc["id"])] = now
            yield encode(doc)

    base = run.stored()
    with tqdm(total=count, desc="paced (half load)", unit="msg", disable=not cfg.progress) as bar:
        produce(run.worker.input_topic, _counted(paced(), bar), linger_ms=PACED_LINGER_MS)
    run.wait_stored(base + count, "the paced items")

    out = consume(run.worker.output_topic, result.backlog + count, timeout=120)
    stored_at = {r.key.decode(): r.timestamp / 1000 for r in out if r.key is not None}
    assert run.engine is not None
    with run.engine.connect() as conn:
        received = dict(
            conn.execute(
                select(NewsItemRow.id, NewsItemRow.received_at).where(
                    NewsItemRow.id.like(f"{run.run_id}-p-%")
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


def _counted(values: Iterator[bytes], bar: tqdm) -> Iterator[bytes]:
    for value in values:
        bar.update()
        yield value


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
