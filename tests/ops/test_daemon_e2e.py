"""The worker as systemd runs it: the unit's own command line, a production-like config with
JSON logs, secrets in the environment. Real broker, real PostgreSQL, real model.

What an operator relies on: `/metrics` counts exactly what was processed, and SIGTERM, even
in the middle of a stream, stops the worker cleanly (exit 0) with nothing lost: what was not
stored is handed back to Kafka and stored, once, by the next worker of the group.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from harness.stack import PG_URL
from harness.worker import (
    REPO,
    WorkerHarness,
    news,
    produce,
    stored_count,
    stored_ids,
    wait_for,
    window_total,
)
from tests.ops.prom import Scrape

pytestmark = [pytest.mark.stack, pytest.mark.slow]

UNIT = REPO / "deploy" / "finmon-worker.service"
MODEL = REPO / "models" / "finmon-minilm-v1"
HEADLINES = [
    "$AAPL shares jump 6% after Apple beats quarterly earnings estimates",
    "$BA plunges 9% after Boeing grounds fleet following safety incident",
    "Fed holds rates steady, signals patience on future cuts",
    "$XOM Exxon Mobil declares quarterly dividend of $0.95 per share",
]


def unit_command(config: Path) -> list[str]:
    """The unit's ExecStart arguments (systemd splits them like a shell, without one), with
    the config file swapped for `config`."""
    line = next(x for x in UNIT.read_text().splitlines() if x.startswith("ExecStart="))
    program, *args = shlex.split(line.removeprefix("ExecStart="))
    assert Path(program).name == "finmon" and args[:2] == ["worker", "-c"], line
    return [args[0], args[1], str(config), *args[3:]]


class UnitWorker(WorkerHarness):
    """`python -m finmon` (which is `finmon`) with the unit's arguments."""

    def __init__(self, tmp_path: Path, config: Path, **env: str) -> None:
        super().__init__(tmp_path, "unit", FINMON_MODEL__PATH=str(MODEL), **env)
        self.arguments = unit_command(config)

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "finmon", *self.arguments]

    def scrape(self) -> Scrape:
        status, body = self.get("/metrics")
        assert status == 200, body
        return Scrape(body)

    def scrape_when_consumed(self, count: int) -> Scrape | None:
        """A scrape once `count` messages were consumed (counters move after the ack)."""
        scrape = self.scrape()
        return scrape if scrape.value("finmon_messages_consumed_total") >= count else None

    def caught_up(self) -> bool:
        """Whether the consumer lag is known and 0: every stored offset was committed."""
        lags = self.scrape().series("finmon_consumer_lag")
        return bool(lags) and not any(lags.values())


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The repository's config.toml with JSON logs, as the deployment guide recommends."""
    if not MODEL.is_dir():
        pytest.skip(f"the model artifact {MODEL} is not built yet")
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    assert "json = false" in text
    path = tmp_path / "config.toml"
    path.write_text(text.replace("json = false", "json = true"), encoding="utf-8")
    return path


def test_metrics_match_what_was_processed_and_sigterm_exits_cleanly(
    tmp_path: Path, config: Path, pg_engine: Engine
) -> None:
    good = [news(f"unit-{i}", HEADLINES[i % len(HEADLINES)]) for i in range(30)]
    bad = [b"{not json", b"\xff\xfe", json.dumps({"id": "no-headline"}).encode()]
    worker = UnitWorker(tmp_path, config)
    with worker:
        produce(worker.input_topic, good + bad)
        wait_for(lambda: stored_count(pg_engine) == 30, 120, "30 rows stored")
        scrape = wait_for(lambda: worker.scrape_when_consumed(33), 30, "33 consumed in /metrics")
        wait_for(worker.caught_up, 30, "consumer lag 0 on every partition with a commit")
        code = worker.stop(signal.SIGTERM)

    assert code == 0, worker.logs()
    assert scrape.value("finmon_messages_stored_total") == 30
    assert scrape.value("finmon_messages_dead_lettered_total") == 3
    assert scrape.value("finmon_messages_duplicate_total") == 0
    assert scrape.value("finmon_batch_size_messages_sum") == 33
    assert scrape.value("finmon_inference_duration_seconds_count") >= 1
    for reference in ("published_at", "kafka_timestamp"):
        assert scrape.value("finmon_end_to_end_lag_seconds_count", reference=reference) == 30
    assert scrape.value("finmon_job_runs_total", job="retention", outcome="ok") >= 1

    assert sorted(stored_ids(pg_engine)) == sorted(f"unit-{i}" for i in range(30))
    assert window_total(pg_engine, 3600) == 30
    logs = worker.logs()
    assert PG_URL not in logs
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(r["message"].startswith("finmon worker starting") for r in records)


def test_sigterm_mid_stream_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, config: Path, pg_engine: Engine
) -> None:
    total = 300
    ids = [f"stream-{i}" for i in range(total)]
    first = UnitWorker(tmp_path, config, FINMON_BATCHING__MAX_BATCH_SIZE="16")
    with first:
        produce(first.input_topic, [news(i, HEADLINES[n % 4]) for n, i in enumerate(ids)])
        wait_for(lambda: stored_count(pg_engine) > 0, 120, "the first rows stored")
        assert first.stop(signal.SIGTERM) == 0, first.logs()
    stored_at_stop = stored_count(pg_engine)

    # The next worker of the same group picks up exactly where the first one committed.
    same_group = {
        name: first.env[name]
        for name in ("FINMON_KAFKA__INPUT_TOPIC", "FINMON_KAFKA__CONSUMER_GROUP")
    }
    second = UnitWorker(tmp_path, config, **same_group)
    with second:
        wait_for(lambda: stored_count(pg_engine) == total, 180, f"{total} rows stored")
        scrape = wait_for(
            lambda: second.scrape_when_consumed(total - stored_at_stop), 30, "/metrics"
        )
        consumed = scrape.value("finmon_messages_consumed_total")
        assert second.stop(signal.SIGTERM) == 0, second.logs()

    assert sorted(stored_ids(pg_engine)) == sorted(ids)
    assert window_total(pg_engine, 3600) == total  # nothing counted twice
    assert stored_at_stop < total, "SIGTERM came too late to test a stop mid-stream"
    # The second worker re-read at most the batch that was in flight at the stop.
    assert total - stored_at_stop <= consumed <= total - stored_at_stop + 16
