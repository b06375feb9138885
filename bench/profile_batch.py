"""`python -m bench.profile_batch`: where one worker batch spends its time, without Kafka.

The end-to-end run says *whether* the pipeline keeps up with the classifier; this says *why
not*. It builds the worker's own `Runtime` (real model, PostgreSQL, alert rules) and feeds it
full batches from the benchmark's headlines, timing each stage the worker runs in its executor
thread (decode, classify, store, alerts) and sampling the whole loop with pyinstrument
(``pip install pyinstrument``; without it only the stage times are printed). What it cannot
see is the Faust side (take, publish, ack); the end-to-end run's /metrics figures cover that.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any

import psutil

from bench.end_to_end import DEFAULT_PG_URL, prepare_database
from bench.workload import Workload, encode
from finmon.runtime import Runtime, build_runtime
from monitor.model.batched import BatchedClassifier, load_classifier
from monitor.model.interface import Classification, Classifier, ModelInput
from monitor.pipeline_types import Origin, RawMessage
from monitor.settings import load_settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class StageTimer:
    """Accumulates wall time per named stage by wrapping bound methods on instances."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: object, method: str, stage: str) -> None:
        inner: Callable[..., Any] = getattr(owner, method)

        @wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started

        setattr(owner, method, timed)


def batches(workload: Workload, size: int, count: int, topic: str) -> list[list[RawMessage]]:
    """`count` batches of `size` raw messages, as the worker receives them from Kafka."""
    now = datetime.now(UTC)
    docs = workload.messages(f"profile-{int(time.time())}", size * count)
    raw = [RawMessage(encode(d), Origin(topic, 0, n, now)) for n, d in enumerate(docs)]
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def _profiler() -> Any:
    """pyinstrument's sampling profiler (a dev dependency), or None where it is missing."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return None
    return Profiler(interval=0.002)


class ReplayClassifier:
    """The real model's verdicts, computed once and then looked up by headline.

    With it the loop does exactly the worker's decoding, SQL and alert work on the same
    verdicts (same topics, same windows), minus inference: the cost of everything else.
    """

    def __init__(self, classifier: BatchedClassifier, workload: Workload) -> None:
        headlines = sorted(set(workload.headlines))
        verdicts = classifier.classify([ModelInput(h) for h in headlines])
        self.verdicts = dict(zip(headlines, verdicts, strict=True))
        self.model_version = classifier.model_version
        self.accepts_targets = False  # verdicts are memoised by headline

    def classify(self, inputs: Sequence[ModelInput]) -> list[Classification]:
        return [self.verdicts[i.headline] for i in inputs]

    def ready(self) -> bool:
        return True


def build(args: argparse.Namespace, workload: Workload) -> Runtime:
    prepare_database(args.pg_url)
    settings = load_settings(
        database={"url": args.pg_url}, batching={"max_batch_size": args.batch_size}
    )
    model = load_classifier(
        args.model or settings.model_path,
        device="cpu",
        threads=args.threads or settings.model.threads,
        max_batch_size=args.batch_size,
        cpu_parallelism=settings.model.cpu_parallelism,
    )
    classifier: Classifier = ReplayClassifier(model, workload) if args.without_model else model
    return build_runtime(settings, classifier=classifier)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_batch", description=__doc__)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--threads", type=int)
    p.add_argument("--model", type=Path)
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="emptied first, like the bench's")
    p.add_argument("--html", type=Path, default=RESULTS_DIR / "profile-batch.html")
    p.add_argument(
        "--without-model",
        action="store_true",
        help="replay precomputed verdicts: profile decoding, SQL and alerts alone",
    )
    args = p.parse_args(argv)

    workload = Workload.generate(4096)
    runtime = build(args, workload)
    work = batches(workload, args.batch_size, args.batches + 3, "profile")
    for batch in work[:3]:  # warm-up: first inference, first statements, connection pool
        runtime.processor.process(batch)
        if runtime.alerts is not None:
            runtime.alerts.evaluate_pending()

    timer = StageTimer()
    timer.wrap(runtime.processor.classifier, "classify", "classify")
    timer.wrap(runtime.processor.news_store, "store", "store (SQL, windows)")
    if runtime.alerts is not None:
        timer.wrap(runtime.alerts, "evaluate", "alerts.evaluate")

    profiler = _profiler()
    if profiler:
        profiler.start()
    cpu_before, pg_before = time.process_time(), postgres_cpu_seconds()
    started = time.perf_counter()
    for batch in work[3:]:
        runtime.processor.process(batch)
        if runtime.alerts is not None:
            runtime.alerts.evaluate_due()  # the worker's timer, once per evaluate_every
    total = time.perf_counter() - started
    cpu, pg = time.process_time() - cpu_before, postgres_cpu_seconds() - pg_before
    if profiler:
        profiler.stop()

    items = args.batch_size * args.batches
    stages = dict(timer.seconds)
    stages["other (decode, glue)"] = total - sum(stages.values())
    print(
        f"{args.batches} batches of {args.batch_size} in {total:.2f} s = {items / total:.1f} "
        f"items/s ({args.threads or runtime.settings.model.threads or os.cpu_count()} CPU "
        f"threads, {runtime.settings.model.cpu_parallelism})"
    )
    for stage, seconds in stages.items():
        print(
            f"  {stage:<24} {1000 * seconds / args.batches:8.1f} ms/batch  "
            f"{100 * seconds / total:5.1f}%"
        )
    print(
        f"  CPU per item: this process {1000 * cpu / items:.2f} ms, PostgreSQL server "
        f"{1000 * pg / items:.2f} ms (all postgres processes; meaningful on a quiet machine)"
    )
    if profiler:
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(profiler.output_html(), encoding="utf-8")
        print(f"profile: {args.html}")
    return 0


def postgres_cpu_seconds() -> float:
    """CPU time used so far by every process named postgres (0 where not visible)."""
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "postgres":
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


if __name__ == "__main__":
    raise SystemExit(main())
