"""What else ran on the machine during each phase, sampled in the background.

On a shared machine a phase's figure means little without the competing load beside it, so
every phase is recorded with the whole machine's CPU use and the busiest processes that were
not the benchmark itself (its worker subprocess counts as the benchmark; Kafka and
PostgreSQL are listed, since the end-to-end phase makes them work).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

INTERVAL_S = 2.0


@dataclass(slots=True)
class PhaseLoad:
    samples: int = 0
    machine_cpu_sum: float = 0.0
    """Sum of machine-wide CPU percent (100 = every core busy)."""
    others: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Command → summed CPU percent of one core, for processes outside the benchmark."""

    def to_dict(self) -> dict[str, Any]:
        n = max(self.samples, 1)
        top = sorted(self.others.items(), key=lambda kv: kv[1], reverse=True)[:4]
        return {
            "samples": self.samples,
            "machine_cpu_percent": round(self.machine_cpu_sum / n, 1) if self.samples else None,
            "busiest_others": [
                {"command": cmd, "cpu_percent": round(total / n, 1)}
                for cmd, total in top
                if total / n >= 2.0
            ],
        }


class LoadMonitor:
    """A daemon thread sampling CPU use every `INTERVAL_S`, attributed to the current phase."""

    def __init__(self) -> None:
        self.phases: dict[str, PhaseLoad] = {}
        self._phase: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._procs: dict[int, psutil.Process] = {}
        self._thread = threading.Thread(target=self._run, name="bench-load", daemon=True)

    def __enter__(self) -> LoadMonitor:
        psutil.cpu_percent(None)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        with self._lock:
            self._phase = name
            self.phases.setdefault(name, PhaseLoad())
        try:
            yield
        finally:
            with self._lock:
                self._phase = None

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {name: load.to_dict() for name, load in self.phases.items()}

    def _ours(self) -> set[int]:
        me = psutil.Process(os.getpid())
        with contextlib.suppress(psutil.Error):
            return {me.pid, *(child.pid for child in me.children(recursive=True))}
        return {me.pid}

    def _sample_processes(self) -> dict[str, float]:
        ours = self._ours()
        usage: dict[str, float] = defaultdict(float)
        alive = set()
        for proc in psutil.process_iter(["cmdline", "name"]):
            alive.add(proc.pid)
            known = self._procs.setdefault(proc.pid, proc)
            try:
                cpu = known.cpu_percent(None)  # since this process's previous sample
            except psutil.Error:
                continue
            if proc.pid in ours or cpu <= 0:
                continue
            usage[_command(proc.info["cmdline"], proc.info["name"])] += cpu
        self._procs = {pid: p for pid, p in self._procs.items() if pid in alive}
        return usage

    def _run(self) -> None:
        self._sample_processes()  # prime per-process counters
        while not self._stop.wait(INTERVAL_S):
            machine = psutil.cpu_percent(None)
            usage = self._sample_processes()
            with self._lock:
                if self._phase is None:
                    continue
                load = self.phases[self._phase]
                load.samples += 1
                load.machine_cpu_sum += machine
                for cmd, cpu in usage.items():
                    load.others[cmd] += cpu


def _command(cmdline: list[str] | None, name: str | None) -> str:
    """A short, recognisable command: the program's base name and its first arguments."""
    if not cmdline:
        return name or "?"
    return " ".join([os.path.basename(cmdline[0]), *cmdline[1:]])[:100]
