"""`finmon worker` with the keyword classifier double in place of the model.

For tests that run several workers at once on a small machine (the cluster fault runs, the
rebalance and stall tests, the scaling and soak benchmarks): everything but the model is the
real daemon (`finmon.daemon.run_worker`: Kafka, PostgreSQL, alerts, scheduler, /ready,
/metrics), and each worker costs a fraction of a core instead of a model's. Run as
`python -m tests.keyword_worker` from the repository root, configured like the worker
(`FINMON_*`, `FINMON_CONFIG`); `harness.worker.KeywordWorkerHarness` starts it.
"""

from __future__ import annotations

from finmon.cli.options import setup_logging
from finmon.daemon import run_worker
from finmon.runtime import build_runtime
from monitor.settings import load_settings
from pipelines.metrics import PipelineMetrics
from tests.doubles import KeywordClassifier


def main() -> None:
    settings = load_settings()
    setup_logging(settings)
    metrics = PipelineMetrics()
    runtime = build_runtime(settings, classifier=KeywordClassifier(), instrument=metrics.timed)
    run_worker(runtime, metrics)


if __name__ == "__main__":
    main()
