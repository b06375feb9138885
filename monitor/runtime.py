"""Assembling the long-lived parts (database, classifier, store, alerts) from settings.

`finmon worker` and `finmon replay` both build a `Runtime`, so a batch is handled by the
very same code whether it came from Kafka or from a file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from monitor.contract import IngestPolicy
from monitor.db.engine import make_engine, upgrade
from monitor.db.store import NewsStore
from monitor.model.interface import Classifier
from monitor.pipeline_types import RawMessage
from monitor.processing import BatchOutcome, BatchProcessor
from monitor.settings import Settings

if TYPE_CHECKING:
    from alerts.service import AlertService

log = logging.getLogger(__name__)


def ingest_policy(settings: Settings) -> IngestPolicy:
    s = settings.ingest
    return IngestPolicy(
        max_headline_chars=s.max_headline_chars,
        max_body_chars=s.max_body_chars,
        max_message_bytes=s.max_message_bytes,
        max_future_skew=s.max_future_skew,
        max_age=s.max_age,
    )


def load_classifier(settings: Settings) -> Classifier:
    """The configured adapted model, loaded once (it is the slow part of start-up)."""
    from monitor.model.batched import load_classifier as load

    return load(
        settings.model_path,
        base_dir=settings.resolve(settings.model.base_path) if settings.model.base_path else None,
        device=settings.model.device,
        threads=settings.model.threads,
        max_batch_size=settings.batching.max_batch_size,
    )


@dataclass(slots=True)
class HandledBatch:
    outcome: BatchOutcome
    alert_events: list[Any] = field(default_factory=list)


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

    def handle(self, messages: Sequence[RawMessage]) -> HandledBatch:
        """Process one batch, then evaluate alert rules on the windows it touched."""
        outcome = self.processor.process(messages)
        handled = HandledBatch(outcome)
        if self.alerts is not None and outcome.stored.windows:
            try:
                handled.alert_events = self.alerts.evaluate(
                    outcome.stored.windows.keys(), datetime.now(UTC)
                )
            except SQLAlchemyError:
                raise  # the caller retries the batch: stored rows are not counted twice
            except Exception:
                # the batch is stored; the next update of these windows evaluates them again
                log.exception("alert evaluation failed for a stored batch")
        return handled


def build_runtime(
    settings: Settings,
    *,
    classifier: Classifier | None = None,
    migrate: bool = False,
    with_alerts: bool = True,
) -> Runtime:
    """Build the runtime; `migrate=True` applies migrations first (the embedded default)."""
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
    return Runtime(settings, engine, classifier or load_classifier(settings), alert_service)
