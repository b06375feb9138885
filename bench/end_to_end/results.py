"""What an end-to-end run is given and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
