"""The results: the machine they were measured on, ratios against the targets, a table, JSON.

Absolute items/s drift with whatever else the machine runs, so every run records the load
and the busiest other processes next to its figures, and the verdicts are on ratios measured
in the same run (see docs/performance.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.ceiling import Sweep

BATCHED_VS_NAIVE_MIN = 3.0
E2E_VS_CEILING_MIN = 0.8
PEAK_RSS_MAX_BYTES = 1.5e9
"""1.5 GB, decimal (stricter than 1.5 GiB)."""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def busiest_processes(sample_s: float = 1.0, top: int = 6) -> list[dict[str, Any]]:
    """Other processes by CPU use over `sample_s`: what else was running during the run."""
    me = os.getpid()
    procs = [p for p in psutil.process_iter(["pid", "name", "cmdline"]) if p.pid != me]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
    time.sleep(sample_s)
    seen = []
    for proc in procs:
        try:
            cpu = proc.cpu_percent(None)
            cmd = " ".join(proc.info["cmdline"] or [proc.info["name"] or "?"])
        except psutil.Error:
            continue
        seen.append({"pid": proc.pid, "cpu_percent": cpu, "command": cmd[:160]})
    seen.sort(key=lambda p: p["cpu_percent"], reverse=True)
    return [p for p in seen[:top] if p["cpu_percent"] >= 1.0]


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment() -> dict[str, Any]:
    """The machine, the software and the load at this moment."""
    import torch
    import transformers

    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty_files": len(_git("status", "--porcelain").splitlines()),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "busiest_other_processes": busiest_processes(),
    }


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    value: float | None
    limit: float | None
    ok: bool | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "ok": self.ok,
            "text": self.text,
        }


def verdicts(
    results: dict[str, Any], cpu_sweep: Sweep | None, ceiling_ips: float | None
) -> list[Verdict]:
    """The issue's four targets, each judged on figures from this run (None: not measured).

    `ceiling_ips` is the classifier ceiling the end-to-end rate is compared with: the higher
    of the sweep's best and its re-measurement after the end-to-end phase.
    """
    out: list[Verdict] = []
    naive = results.get("naive")
    best = ceiling_ips
    if naive and cpu_sweep:
        ratio = cpu_sweep.best.items_per_s / naive["items_per_s"]
        out.append(
            Verdict(
                "batched_vs_naive",
                round(ratio, 2),
                BATCHED_VS_NAIVE_MIN,
                ratio >= BATCHED_VS_NAIVE_MIN,
                f"batched ÷ naive = {ratio:.2f}x (target ≥ {BATCHED_VS_NAIVE_MIN:g}x)",
            )
        )
    e2e = results.get("end_to_end")
    if e2e and best:
        sustained = e2e["sustained"]
        ratio = sustained["items_per_s"] / best
        valid = bool(sustained.get("valid")) and not e2e["config"].get("sampled")
        out.append(
            Verdict(
                "end_to_end_vs_ceiling",
                round(ratio, 3),
                E2E_VS_CEILING_MIN,
                (ratio >= E2E_VS_CEILING_MIN) if valid else None,
                f"end to end ÷ ceiling = {ratio:.2f} (target ≥ {E2E_VS_CEILING_MIN:g})"
                + (
                    "" if valid else "  [not a verdict: window < 30 s, backlog ran out, or sampled]"
                ),
            )
        )
    if e2e and cpu_sweep:
        size = e2e["config"]["batch_size"]
        point = cpu_sweep.at(size)
        batch_s = point.batch_seconds if point else size / cpu_sweep.best.items_per_s
        limit_ms = 2 * e2e["config"]["max_wait_ms"] + 1000 * batch_s
        p99 = e2e["latency"].get("produce_to_stored", {}).get("p99_ms")
        if p99 is not None:
            out.append(
                Verdict(
                    "p99_latency_ms",
                    p99,
                    round(limit_ms, 1),
                    None if e2e["config"].get("sampled") else p99 <= limit_ms,
                    f"p99 latency = {p99:.0f} ms (target ≤ 2 x {e2e['config']['max_wait_ms']} ms"
                    f" + {1000 * batch_s:.0f} ms for one batch of {size} = {limit_ms:.0f} ms)",
                )
            )
    if e2e and e2e["memory"].get("worker_peak_rss_bytes"):
        rss = e2e["memory"]["worker_peak_rss_bytes"]
        out.append(
            Verdict(
                "worker_peak_rss_bytes",
                rss,
                PEAK_RSS_MAX_BYTES,
                rss <= PEAK_RSS_MAX_BYTES,
                f"worker peak RSS = {rss / 1e9:.2f} GB (target ≤ {PEAK_RSS_MAX_BYTES / 1e9:g} GB)",
            )
        )
    return out


def _mark(ok: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a "}[ok]


def _row(label: str, value: str, note: str = "") -> str:
    return f"  {label:<46} {value:>14}  {note}".rstrip()


def render(results: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of a run."""
    env = results["environment"]
    lines = [
        f"finmon benchmark — {env['at']} on {env['cpus']} CPUs ({env['cpu']}), "
        f"torch {env['torch']}, {results['threads']} threads ({results['cpu_parallelism']})",
        f"  load average at start {env['load_avg']}; model {results['model']['version']}"
        f" (max_length {results['model']['max_length']})",
        f"  headlines: {results['workload']['items']} from monitor.sample, tokens "
        f"mean {results['workload']['tokens']['mean']}, max {results['workload']['tokens']['max']}",
    ]
    for proc in env.get("busiest_other_processes", []):
        lines.append(f"  also running: {proc['cpu_percent']:5.0f}% CPU  {proc['command'][:90]}")
    lines += ["", _row("measurement", "items/s", "notes"), "  " + "-" * 90]
    naive = results.get("naive")
    if naive:
        agree = naive.get("agreement_with_batched")
        low, high = naive["spread_items_per_s"]
        note = f"{naive['items']} headlines, one call each; rounds {low:.0f}-{high:.0f}"
        if agree is not None:
            note += f"; same label as batched for {100 * agree:.2f}%"
        lines.append(_row("1. naive transformers pipeline", f"{naive['items_per_s']:.1f}", note))
    for key, title in (("ceiling", "2. batched classifier"), ("gpu", "5. GPU batched classifier")):
        sweep = results.get(key)
        if not sweep:
            continue
        for point in sweep["sweep"]:
            best = " ← best" if point["batch_size"] == sweep["best"]["batch_size"] else ""
            lines.append(
                _row(
                    f"{title} ({sweep['device']}), batch {point['batch_size']}",
                    f"{point['items_per_s']:.1f}",
                    f"{point['batch_ms']:.1f} ms/batch; rounds "
                    f"{point['spread_items_per_s'][0]:.0f}-{point['spread_items_per_s'][1]:.0f}"
                    f"{best}",
                )
            )
    recheck = results.get("ceiling_recheck")
    if recheck:
        point = recheck["best"]
        lines.append(
            _row(
                f"   re-measured after end to end, batch {point['batch_size']}",
                f"{point['items_per_s']:.1f}",
                "the higher of the two is the ceiling below",
            )
        )
    e2e = results.get("end_to_end")
    if e2e:
        cfg, sus, lat = e2e["config"], e2e["sustained"], e2e["latency"]
        lines.append(
            _row(
                f"3. end to end, worker batch {cfg['batch_size']}, wait {cfg['max_wait_ms']} ms",
                f"{sus['items_per_s']:.1f}",
                f"{sus['items']} rows over {sus['seconds']} s; worker CPU "
                f"{sus['worker_cpu_percent']}%",
            )
        )
        total = lat.get("produce_to_stored", {})
        if total:
            lines.append(
                _row(
                    f"   latency at {lat['rate_per_s']}/s, p50 / p95 / p99",
                    f"{total['p50_ms']:.0f}/{total['p95_ms']:.0f}/{total['p99_ms']:.0f} ms",
                    f"n={total['n']}, max {total['max_ms']:.0f} ms",
                )
            )
        wait, proc = lat.get("produce_to_batch_start", {}), lat.get("batch_start_to_stored", {})
        if wait and proc:
            lines.append(
                _row(
                    "   of which: waiting for a batch, p50 / p99",
                    f"{wait['p50_ms']:.0f}/{wait['p99_ms']:.0f} ms",
                    f"processing p50 / p99 {proc['p50_ms']:.0f}/{proc['p99_ms']:.0f} ms",
                )
            )
        share = e2e.get("worker_metrics") or {}
        if share:
            lines.append(
                _row(
                    "   classifier calls / batches in flight (mean)",
                    f"{share['inference_share']:.2f} / {share['batch_share']:.2f}",
                    f"mean batch {share['mean_batch_size']} items, {share['mean_batch_ms']} ms "
                    f"({share['mean_inference_ms']} ms inference)",
                )
            )
        rss = e2e["memory"].get("worker_peak_rss_bytes")
        if rss:
            processes = len(e2e["memory"].get("worker_peak_rss_by_process", {})) or 1
            lines.append(
                _row(
                    "4. worker peak RSS (VmHWM)",
                    f"{rss / 1e6:.0f} MB",
                    f"sum over {processes} process(es): worker + inference",
                )
            )
        checks = e2e["checks"]
        lines.append(
            _row(
                "   checks",
                "ok" if checks.get("window_totals_match") else "MISMATCH",
                f"{checks.get('stored_rows')} rows; window totals = rows for every size; "
                f"worker exit {checks.get('worker_exit_code')}",
            )
        )
    if results.get("end_to_end_error"):
        lines.append(f"  3. end to end FAILED: {results['end_to_end_error'][:160]}")
    phases = results.get("load_by_phase") or {}
    if phases:
        lines += ["", "machine load during each phase (others = processes outside the benchmark)"]
    for name, load in phases.items():
        if load["machine_cpu_percent"] is None:
            continue  # shorter than one sampling interval
        others = "; ".join(
            f"{o['cpu_percent']:.0f}% {o['command'][:40]}" for o in load["busiest_others"][:3]
        )
        lines.append(f"  {name:<16} machine {load['machine_cpu_percent']:3.0f}%  others: {others}")
    lines += ["", "ratios vs targets"]
    for verdict in results.get("verdicts", []):
        lines.append(f"  [{_mark(verdict['ok'])}] {verdict['text']}")
    return "\n".join(lines)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


def plot_sweeps(path: Path, sweeps: list[dict[str, Any]], naive: dict[str, Any] | None) -> None:
    """items/s against batch size, one line per device, the naive baseline as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for sweep in sweeps:
        sizes = [p["batch_size"] for p in sweep["sweep"]]
        ax.plot(
            sizes,
            [p["items_per_s"] for p in sweep["sweep"]],
            marker="o",
            label=f"batched classifier ({sweep['parallelism']})",
        )
    if naive:
        ax.axhline(naive["items_per_s"], color="grey", linestyle="--", label="naive pipeline")
    ax.set_xscale("log", base=2)
    ticks = sorted({p["batch_size"] for sweep in sweeps for p in sweep["sweep"]})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("items/s")
    ax.set_title("finmon classifier: throughput by batch size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
