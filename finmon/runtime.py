"""Assembling the long-lived parts (database, classifier, processor, alerts) from settings.

`finmon worker` and `finmon replay` both build a `Runtime`, so a batch is processed by the
very same `BatchProcessor` whether it came from Kafka or from a file. This is the one place
that knows how the parts fit: the processor tells the alert service which windows each
stored batch touched, without the core knowing alerts exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from alerts.service import AlertService
from monitor.contract import IngestPolicy
from monitor.db.engine import make_engine, upgrade
from monitor.db.store import NewsStore
from monitor.model.interface import Classifier
from monitor.novelty import Linker, NoveltyPolicy
from monitor.processing import BatchProcessor
from monitor.settings import Settings


def ingest_policy(settings: Settings) -> IngestPolicy:
    s = settings.ingest
    return IngestPolicy(
        max_headline_chars=s.max_headline_chars,
        max_body_chars=s.max_body_chars,
        max_message_bytes=s.max_message_bytes,
        max_future_skew=s.max_future_skew,
        max_age=s.max_age,
        max_tickers=s.max_tickers,
    )


def story_linker(settings: Settings) -> Linker | None:
    """The story linker of `[novelty]`, or None when it is off."""
    s = settings.novelty
    if not s.enabled:
        return None
    return Linker(NoveltyPolicy(horizon=s.horizon, jaccard=s.jaccard, containment=s.containment))


def load_classifier(settings: Settings, *, own_process: bool = False) -> Classifier:
    """The configured adapted model, loaded once (it is the slow part of start-up); in a
    process of its own with `own_process` (the worker's default, `model.own_process`)."""
    model = settings.model
    options: dict[str, Any] = {
        "path": settings.model_path,
        "base_dir": settings.resolve(model.base_path) if model.base_path else None,
        "device": model.device,
        "threads": model.threads,
        "cpu_parallelism": model.cpu_parallelism,
        "max_batch_size": settings.batching.max_batch_size,
    }
    if own_process:
        from monitor.model.process import ProcessClassifier

        return ProcessClassifier(**options)
    from monitor.model.batched import load_classifier as load

    return load(**options)


@dataclass(frozen=True, slots=True)
class Runtime:
    """The parts one worker or replay run shares."""

    settings: Settings
    engine: Engine
    classifier: Classifier
    """The loaded model; the processor calls it, through an instrumenting wrapper if the
    caller asked for one."""
    processor: BatchProcessor
    alerts: AlertService | None

    def close(self) -> None:
        """Release the pooled connections and stop an inference process, if any."""
        self.engine.dispose()
        close = getattr(self.classifier, "close", None)
        if close is not None:
            close()


def assemble(
    settings: Settings,
    engine: Engine,
    classifier: Classifier,
    alerts: AlertService | None = None,
    *,
    instrument: Callable[[Classifier], Classifier] | None = None,
) -> Runtime:
    """Wire already built parts: the processor classifies with `classifier` (wrapped by
    `instrument`, if given), stores into `engine` and notes the windows it touched with
    `alerts`."""
    processor = BatchProcessor(
        classifier if instrument is None else instrument(classifier),
        NewsStore(engine, settings.windows.sizes, story_linker(settings)),
        ingest_policy(settings),
        on_windows_stored=None if alerts is None else alerts.note_stored,
    )
    return Runtime(settings, engine, classifier, processor, alerts)


def build_runtime(
    settings: Settings,
    *,
    classifier: Classifier | None = None,
    migrate: bool = False,
    with_alerts: bool = True,
    own_process: bool = False,
    instrument: Callable[[Classifier], Classifier] | None = None,
) -> Runtime:
    """Build the runtime; `migrate=True` applies migrations first (the embedded default);
    `own_process` loads the model in a process of its own (see `load_classifier`);
    `instrument` wraps the classifier before anything uses it (the worker's timing)."""
    url = settings.database_url
    if migrate:
        upgrade(url)
    engine = make_engine(url, pool_size=settings.database.pool_size)
    with engine.connect() as conn:  # fail fast, before the slow model load
        conn.execute(text("SELECT 1"))
    alert_service = AlertService.from_settings(settings, engine) if with_alerts else None
    classifier = classifier or load_classifier(settings, own_process=own_process)
    return assemble(settings, engine, classifier, alert_service, instrument=instrument)
