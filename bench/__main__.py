"""`python -m bench`: every measurement in one process run, then a table and a JSON file.

Order: the naive baseline, the batched classifier sweep, end to end (a `finmon worker`
subprocess against Kafka and PostgreSQL, which also gives the worker's peak RSS), and the
GPU sweep when CUDA is present. All phases use the same generated headlines and the same
torch thread count. Run `python -m bench --help` for the options; docs/performance.md has
the figures and how to read them.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from kafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from bench import report
from bench.ceiling import DEFAULT_BATCH_SIZES, GPU_BATCH_SIZES, Sweep, sweep
from bench.load import LoadMonitor
from bench.workload import Workload
from monitor.model.artifact import load_artifact
from monitor.model.batched import load_classifier
from monitor.settings import load_settings

PHASES = ("naive", "ceiling", "e2e", "gpu")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
FALLBACK_RATE = 300.0
"""items/s assumed to size the end-to-end backlog when the sweep is skipped."""


def _sizes(text: str) -> list[int]:
    sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("batch sizes must be positive integers")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes for a smoke run (not a verdict: the window is < 30 s)",
    )
    p.add_argument("--items", type=int, help="headlines in the pool (default 4096; quick 256)")
    p.add_argument(
        "--naive-items",
        type=int,
        help="headlines for the naive baseline (default: all of the pool)",
    )
    p.add_argument(
        "--batch-sizes",
        type=_sizes,
        default=list(DEFAULT_BATCH_SIZES),
        help="CPU sweep, comma-separated (default 1,8,16,32,64,128)",
    )
    p.add_argument(
        "--duration",
        type=float,
        help="sustained end-to-end window in seconds (default 40; quick 8)",
    )
    p.add_argument("--warmup", type=float, help="seconds ignored after the first row (default 10)")
    p.add_argument(
        "--paced", type=float, help="seconds of half-load traffic for latency (default 30; quick 8)"
    )
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads, every phase (default: config's model.threads or all CPUs)",
    )
    p.add_argument(
        "--cpu-parallelism",
        choices=["split-batch", "intra-op"],
        help="how finmon's classifier (ceiling and worker) uses them (default: config's); "
        "the naive pipeline always uses torch's own intra-op threads",
    )
    p.add_argument("--model", type=Path, help="artifact directory (default: config's model.path)")
    p.add_argument(
        "--worker-batch-size",
        default="config",
        help="worker's max_batch_size: 'config' (as deployed, default), 'best' (the "
        "sweep's best size), or a number",
    )
    p.add_argument("--max-wait-ms", type=int, help="worker's max batch wait (default: config)")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("FINMON_BENCH_PG_URL"),
        help="benchmark database, created and emptied (default: finmon_bench on the "
        "local stack; env FINMON_BENCH_PG_URL)",
    )
    p.add_argument(
        "--skip", action="append", default=[], choices=PHASES, help="leave a phase out (repeatable)"
    )
    p.add_argument(
        "--out", type=Path, help="JSON results (default bench/results/bench-<UTC time>.json)"
    )
    p.add_argument(
        "--profile-worker",
        action="store_true",
        help="sample the end-to-end worker's threads (bench/results/worker-samples*); "
        "its figures are then not verdicts",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    quick = args.quick
    args.items = args.items or (256 if quick else 4096)
    args.naive_items = min(args.naive_items or args.items, args.items)
    args.duration = args.duration or (8.0 if quick else 40.0)
    args.warmup = args.warmup if args.warmup is not None else (3.0 if quick else 10.0)
    args.paced = args.paced or (8.0 if quick else 30.0)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out = args.out or RESULTS_DIR / f"bench-{stamp}.json"
    return args


def worker_batch_size(choice: str, cpu_sweep: Sweep | None, configured: int) -> tuple[int, str]:
    if choice == "config" or (choice == "best" and cpu_sweep is None):
        return configured, "configured"
    if choice == "best":
        assert cpu_sweep is not None
        return cpu_sweep.best.batch_size, "best of the sweep"
    return int(choice), "given"


class Bench:
    """One run: the shared headlines, the loaded classifier, and the results so far."""

    def __init__(self, args: argparse.Namespace, load: LoadMonitor) -> None:
        self.args = args
        self.load = load
        self.settings = load_settings()
        self.threads = args.threads or self.settings.model.threads or os.cpu_count() or 1
        self.cpu_parallelism = args.cpu_parallelism or self.settings.model.cpu_parallelism
        self.model_path = args.model or self.settings.model_path
        self.progress = not args.no_progress
        self.workload = Workload.generate(args.items)
        self.classifier = load_classifier(
            self.model_path,
            device="cpu",
            threads=self.threads,
            max_batch_size=max(args.batch_sizes),
            cpu_parallelism=self.cpu_parallelism,
        )
        self.cpu_sweep: Sweep | None = None
        self.ceiling_ips: float | None = None
        self.results: dict[str, Any] = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "threads": self.threads,
            "cpu_parallelism": self.cpu_parallelism,
            "model": {
                "path": str(self.model_path),
                "version": self.classifier.model_version,
                "max_length": self.classifier.max_length,
            },
            "workload": {
                "source": "monitor.sample.generate (seed 7, six hours)",
                "items": len(self.workload.docs),
                "tokens": self.workload.token_stats(
                    self.classifier.tokenizer, self.classifier.max_length
                ),
            },
        }

    def naive(self) -> None:
        from bench.naive import run_naive

        n = self.args.naive_items
        with self.load.phase("naive"):
            naive = run_naive(
                load_artifact(self.model_path),
                self.workload.headlines[:n],
                threads=self.threads,
                progress=self.progress,
            )
        batched = self.classifier.classify(self.workload.inputs[:n])
        same = sum(b.sentiment == label for b, label in zip(batched, naive.labels, strict=True))
        self.results["naive"] = naive.to_dict() | {"agreement_with_batched": round(same / n, 4)}

    def _sweep(self, sizes: list[int], phase: str) -> Sweep:
        with self.load.phase(phase):
            return sweep(
                self.classifier,
                self.workload.inputs,
                sizes,
                device=torch.device("cpu"),
                progress=self.progress,
            )

    def ceiling(self) -> None:
        self.cpu_sweep = self._sweep(self.args.batch_sizes, "ceiling")
        self.ceiling_ips = self.cpu_sweep.best.items_per_s
        self.results["ceiling"] = self.cpu_sweep.to_dict()

    def end_to_end(self) -> None:
        from bench.end_to_end import DEFAULT_PG_URL, EndToEndConfig, run_end_to_end

        size, why = worker_batch_size(
            self.args.worker_batch_size, self.cpu_sweep, self.settings.batching.max_batch_size
        )
        config = EndToEndConfig(
            pg_url=self.args.pg_url or DEFAULT_PG_URL,
            batch_size=size,
            max_wait_ms=self.args.max_wait_ms or self.settings.batching.max_wait_ms,
            threads=self.threads,
            cpu_parallelism=self.cpu_parallelism,
            device="cpu",
            model_path=self.args.model,
            duration_s=self.args.duration,
            warmup_s=self.args.warmup,
            paced_s=self.args.paced,
            expected_items_per_s=self._fastest_round() or FALLBACK_RATE,
            log_dir=RESULTS_DIR / "logs",
            progress=self.progress,
            samples_out=self.args.out.with_suffix(".worker-samples")
            if self.args.profile_worker
            else None,
        )
        with self.load.phase("end_to_end"):
            e2e = run_end_to_end(self.workload, config)
        self.results["end_to_end"] = e2e.to_dict()
        self.results["end_to_end"]["config"]["batch_size_source"] = why
        if self.cpu_sweep is not None:
            # The load on a shared machine drifts: measure the ceiling again after the
            # end-to-end run; the verdict uses the higher of the two (the stricter one).
            recheck = self._sweep([self.cpu_sweep.best.batch_size], "ceiling_recheck")
            self.results["ceiling_recheck"] = recheck.to_dict()
            self.ceiling_ips = max(self.ceiling_ips or 0.0, recheck.best.items_per_s)

    def _fastest_round(self) -> float | None:
        """The highest rate any sweep round reached: sizes the backlog so that a worker
        faster than a disturbed sweep median still cannot run out of messages."""
        if self.cpu_sweep is None:
            return None
        return max(t.rate for point in self.cpu_sweep.points for t in point.rounds)

    def gpu(self) -> None:
        gpu_classifier = load_classifier(
            self.model_path, device="cuda", max_batch_size=max(GPU_BATCH_SIZES)
        )
        with self.load.phase("gpu"):
            gpu_sweep = sweep(
                gpu_classifier,
                self.workload.inputs,
                GPU_BATCH_SIZES,
                device=torch.device("cuda"),
                progress=self.progress,
            )
        self.results["gpu"] = gpu_sweep.to_dict() | {"name": torch.cuda.get_device_name(0)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    env = report.environment()
    print(f"load average {env['load_avg']}; busiest other processes:", file=sys.stderr)
    for proc in env["busiest_other_processes"]:
        print(f"  {proc['cpu_percent']:5.0f}%  {proc['command'][:100]}", file=sys.stderr)

    with LoadMonitor() as load:
        bench = Bench(args, load)
        if "naive" not in args.skip:
            bench.naive()
        if "ceiling" not in args.skip:
            bench.ceiling()
        if "e2e" not in args.skip:
            try:
                bench.end_to_end()
            except (RuntimeError, OSError, SQLAlchemyError, KafkaError) as exc:
                # A shared stack can be restarted under us: keep the other phases' figures.
                bench.results["end_to_end_error"] = f"{type(exc).__name__}: {exc}"
                print(f"end-to-end phase failed: {exc}", file=sys.stderr)
        del bench.classifier
        gc.collect()
        if "gpu" not in args.skip and torch.cuda.is_available():
            bench.gpu()

    results = {"environment": env, **bench.results, "load_by_phase": load.summary()}
    results["verdicts"] = [
        v.to_dict() for v in report.verdicts(results, bench.cpu_sweep, bench.ceiling_ips)
    ]
    results["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_s"] = round(time.monotonic() - started, 1)
    report.write_json(args.out, results)
    sweeps = [results[k] for k in ("ceiling", "gpu") if k in results]
    chart = args.out.with_suffix(".png")
    if sweeps:
        report.plot_sweeps(chart, sweeps, results.get("naive"))
    print()
    print(report.render(results))
    print(f"\nresults: {args.out}" + (f"  chart: {chart}" if sweeps else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
