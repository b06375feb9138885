"""Assembling the long-lived parts (database, classifier, store, alerts) from settings.

`finmon worker` and `finmon replay` both build a `Runtime`, so a batch is handled by the
very same code whether it came from Kafka or from a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

from monitor.contract import IngestPolicy
from monitor.db.engine import make_engine, upgrade
from monitor.db.store import NewsStore
from monitor.model.interface import Classifier
from monitor.pipeline_types import RawMessage
from monitor.processing import BatchOutcome, BatchProcessor, PreparedBatch
from monitor.settings import Settings

if TYPE_CHECKING:
    from alerts.service import AlertService


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


def load_classifier(settings: Settings, *, own_process: bool = False) -> Classifier:
    """The configured adapted model, loaded once (it is the slow part of start-up); in a
    process of its own with `own_process` (the worker's default, `model.own_process`)."""
    model = settings.model
    options = {
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


class Runtime:
    """The worker's and replay's shared core: one `handle` call per batch."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        classifier: Classifier,
        alerts: AlertService | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.classifier = classifier
        self.store = NewsStore(engine, settings.windows.sizes)
        self.processor = BatchProcessor(classifier, self.store, ingest_policy(settings))
        self.alerts = alerts

    def close(self) -> None:
        """Release the pooled connections and stop an inference process, if any."""
        self.engine.dispose()
        close = getattr(self.classifier, "close", None)
        if close is not None:
            close()

    def handle(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        """Process one batch: `commit(prepare(messages))`."""
        return self.commit(self.prepare(messages))

    def prepare(self, messages: Sequence[RawMessage]) -> PreparedBatch:
        """Decode and classify a batch (no database work; never raises)."""
        return self.processor.prepare(messages)

    def commit(self, prepared: PreparedBatch) -> BatchOutcome:
        """Store a prepared batch and note the windows it touched for the alert rules, which
        a timer judges every `alerts.evaluate_every`. Raises only database errors; the
        caller retries the same batch, and stored rows are not counted twice."""
        outcome = self.processor.persist(prepared)
        if self.alerts is not None:
            self.alerts.note_stored(outcome.stored.windows.keys())
        return outcome


def build_runtime(
    settings: Settings,
    *,
    classifier: Classifier | None = None,
    migrate: bool = False,
    with_alerts: bool = True,
    own_process: bool = False,
) -> Runtime:
    """Build the runtime; `migrate=True` applies migrations first (the embedded default);
    `own_process` loads the model in a process of its own (see `load_classifier`)."""
    url = settings.database_url
    if migrate:
        upgrade(url)
    engine = make_engine(url, pool_size=settings.database.pool_size)
    with engine.connect() as conn:  # fail fast, before the slow model load
        conn.execute(text("SELECT 1"))
    alert_service = None
    if with_alerts:
        from alerts.service import AlertService

        alert_service = AlertService.from_settings(settings, engine)
    classifier = classifier or load_classifier(settings, own_process=own_process)
    return Runtime(settings, engine, classifier, alert_service)
