"""`finmon worker` with the keyword classifier double in place of the model.

For tests that run several workers at once on a small machine (the cluster fault runs, the
rebalance and stall tests): everything but the model is the real daemon (`run_worker`:
Kafka, PostgreSQL, alerts, scheduler, /ready, /metrics), and each worker costs a fraction
of a core instead of a model's. Run as `python -m tests.keyword_worker` from the repository
root, configured like the worker (`FINMON_*`, `FINMON_CONFIG`).
"""

from __future__ import annotations

from monitor.cli import setup_logging
from monitor.runtime import build_runtime
from monitor.settings import load_settings
from pipelines.worker import run_worker
from tests.doubles import KeywordClassifier


def main() -> None:
    settings = load_settings()
    setup_logging(settings)
    run_worker(settings, build_runtime(settings, classifier=KeywordClassifier()))


if __name__ == "__main__":
    main()
