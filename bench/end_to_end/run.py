"""One end-to-end run: the worker, its topics and the benchmark database, sampled once a
second while the phases (sustained.py, half_load.py, closing.py) run in order."""

from __future__ import annotations

import signal
import sys
import time
import uuid

import psutil
from sqlalchemy import Engine, make_url
from tqdm import tqdm

from bench.end_to_end.closing import close_run
from bench.end_to_end.half_load import measure_half_load
from bench.end_to_end.measures import tree_rss
from bench.end_to_end.results import EndToEndConfig, EndToEndResult, Sample
from bench.end_to_end.stack import prepare_database
from bench.end_to_end.sustained import measure_sustained, produce_backlog
from bench.workload import Workload
from harness.stack import KAFKA_BOOTSTRAP
from harness.worker import WorkerHarness, stored_count
from monitor.settings import KafkaSettings
from pipelines.topics import ensure_topics

STALL_S = 90.0
"""Give up when no row is stored for this long."""


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

    # -- sampling the worker (used by every phase) ---------------------------------------

    def stored(self) -> int:
        assert self.engine is not None
        return stored_count(self.engine)

    def sample(self) -> Sample:
        rss = tree_rss(self.process) if self.process is not None else 0
        sample = Sample(time.monotonic(), self.stored(), rss)
        self.samples.append(sample)
        return sample

    def wait_stored(self, target: int, what: str, bar: tqdm | None = None) -> Sample:
        """Poll (1/s) until `target` rows are stored; fail if nothing moves for STALL_S."""
        last = self.sample()
        moved = last.at
        while last.stored < target:
            time.sleep(1.0)
            self.check_alive()
            current = self.sample()
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

    def wait_until(self, deadline: float, bar: tqdm) -> Sample:
        """Sample once a second until `deadline` (monotonic) or the backlog is exhausted."""
        last = self.samples[-1]
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))
            self.check_alive()
            current = self.sample()
            bar.update(current.stored - last.stored)
            last = current
        return last

    def cpu_seconds(self) -> float:
        """CPU time the worker has used so far (user + system, all threads)."""
        if self.process is None:
            return 0.0
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def check_alive(self) -> None:
        proc = self.worker.process
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}; log: {self.worker.log_path}")

    # -- the run ---------------------------------------------------------------------------

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
            produce_backlog(self, result)
            started = time.monotonic()
            self.worker.start()
            result.startup_s = time.monotonic() - started
            assert self.worker.process is not None
            self.process = psutil.Process(self.worker.process.pid)
            measure_sustained(self, result)
            measure_half_load(self, result)
            close_run(self, result)
        finally:
            if self.worker.process is not None and self.worker.process.poll() is None:
                self.worker.stop(signal.SIGKILL)
            self.engine.dispose()
        return result
