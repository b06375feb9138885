"""One batch through finmon: decode, classify, store. Shared by `finmon worker` and `replay`.

Synchronous on purpose: the worker runs `process` in an executor thread, so neither model
inference nor SQL ever blocks the Faust event loop, and replay simply calls it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from monitor.contract import IngestPolicy, NewsItem, decode_news
from monitor.db.store import NewsStore, StoreResult
from monitor.model.interface import Classifier, ModelInput
from monitor.pipeline_types import ClassifiedItem, DeadLetter, RawMessage
from monitor.windows import WindowCounts

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchOutcome:
    """Every message of a batch lands in exactly one of: stored, duplicates, dead_letters."""

    stored: StoreResult = field(default_factory=StoreResult)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    repeated_in_batch: int = 0
    """Messages whose id already appeared earlier in the same batch."""

    def merge(self, other: BatchOutcome) -> None:
        """Add `other` (a part of the same batch) into this outcome."""
        self.stored.inserted += other.stored.inserted
        self.stored.duplicates += other.stored.duplicates
        self.stored.conflicts += other.stored.conflicts
        for key, counts in other.stored.windows.items():
            self.stored.windows.setdefault(key, WindowCounts()).merge(counts)
        self.dead_letters += other.dead_letters
        self.repeated_in_batch += other.repeated_in_batch

    @property
    def classified(self) -> list[ClassifiedItem]:
        """Everything published to the output topic: new and redelivered items alike, so a
        crash between storing and publishing is repaired by the redelivery."""
        return self.stored.inserted + self.stored.duplicates


class BatchProcessor:
    """Wires the pure decoder, a classifier and the store together for one batch."""

    def __init__(
        self,
        classifier: Classifier,
        store: NewsStore,
        policy: IngestPolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.classifier = classifier
        self.store = store
        self.policy = policy
        self.clock = clock

    def process(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        """Process a batch. Raises only if the database fails, in which case nothing was
        stored and the caller must retry the same batch (offsets are not committed).

        Any other error (a classifier bug on one odd input, say) must not stall the stream
        nor lose the batch: the batch is split and retried until the failing messages are
        isolated, and those go to the dead letters with the error as the reason."""
        try:
            return self._process(messages)
        except SQLAlchemyError:
            raise
        except Exception as exc:
            if len(messages) == 1:
                log.exception("message dead-lettered: processing failed")
                reason = f"processing failed: {type(exc).__name__}: {exc}"[:500]
                return BatchOutcome(
                    dead_letters=[DeadLetter(messages[0].value, reason, messages[0].origin)]
                )
            log.warning("batch of %d failed (%s); isolating the cause", len(messages), exc)
            middle = len(messages) // 2
            outcome = self.process(messages[:middle])
            outcome.merge(self.process(messages[middle:]))
            return outcome

    def _process(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        outcome = BatchOutcome()
        now = self.clock()
        items: dict[str, tuple[NewsItem, RawMessage]] = {}
        for message in messages:
            decoded = decode_news(message.value, now=now, policy=self.policy)
            if isinstance(decoded, NewsItem):
                if decoded.id in items:
                    outcome.repeated_in_batch += 1
                    if items[decoded.id][0].content_hash != decoded.content_hash:
                        log.warning(
                            "duplicate id with different content in one batch ignored "
                            "(first write wins)",
                            extra={"item_id": decoded.id},
                        )
                else:
                    items[decoded.id] = (decoded, message)
            else:
                outcome.dead_letters.append(DeadLetter(decoded.raw, decoded.reason, message.origin))
        if items:
            pairs = list(items.values())
            verdicts = self.classifier.classify([ModelInput(i.headline, i.body) for i, _ in pairs])
            classified = [
                ClassifiedItem(item, verdict, msg.origin)
                for (item, msg), verdict in zip(pairs, verdicts, strict=True)
            ]
            outcome.stored = self.store.store(classified, now=now)
        return outcome
