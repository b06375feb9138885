"""One batch through finmon: decode, classify, store. Shared by `finmon worker` and `replay`.

Processing a batch is two synchronous steps, `classify` (decode + classify, no I/O but the
model) and `store` (one transaction), and `process` is the two in a row. The worker's
pipeline (pipelines/batch.py) runs each step in a thread of its own, so neither model
inference nor SQL ever blocks its event loop, and classifies batch k+1 while batch k is
stored; replay calls `process`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from monitor.contract import IngestPolicy, NewsItem, decode_news
from monitor.db.store import NewsStore, StoreResult
from monitor.model.interface import Classifier
from monitor.pipeline_types import ClassifiedItem, DeadLetter, RawMessage
from monitor.targets import model_inputs, split_verdicts
from monitor.windows import WindowCounts, WindowKey

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchOutcome:
    """Every message of a batch lands in exactly one of: stored, duplicates, dead_letters."""

    stored: StoreResult = field(default_factory=StoreResult)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    repeated_in_batch: int = 0
    """Messages whose id already appeared earlier in the same batch."""

    def merge(self, other: BatchOutcome) -> BatchOutcome:
        """Add `other` (a part of the same batch) into this outcome; returns it."""
        self.stored.inserted += other.stored.inserted
        self.stored.duplicates += other.stored.duplicates
        self.stored.conflicts += other.stored.conflicts
        for key, counts in other.stored.windows.items():
            self.stored.windows.setdefault(key, WindowCounts()).merge(counts)
        self.dead_letters += other.dead_letters
        self.repeated_in_batch += other.repeated_in_batch
        return self

    @property
    def classified(self) -> list[ClassifiedItem]:
        """Everything published to the output topic: new and redelivered items alike, so a
        crash between storing and publishing is repaired by the redelivery."""
        return self.stored.inserted + self.stored.duplicates


@dataclass(slots=True)
class ClassifiedBatch:
    """A batch decoded and classified, not stored yet: the worker classifies the next batch
    while this one is being stored."""

    now: datetime
    outcome: BatchOutcome = field(default_factory=BatchOutcome)
    """Dead letters and in-batch repeats found so far."""
    classified: list[tuple[ClassifiedItem, RawMessage]] = field(default_factory=list)

    def merge(self, other: ClassifiedBatch) -> ClassifiedBatch:
        """Add `other` (a later part of the same batch); an id seen in an earlier part is a
        repeat, as if the batch had not been split."""
        self.outcome.merge(other.outcome)
        seen = {c.item.id for c, _ in self.classified}
        for pair in other.classified:
            if pair[0].item.id in seen:
                self.outcome.repeated_in_batch += 1
            else:
                self.classified.append(pair)
        return self


def _dead_letter(message: RawMessage, exc: Exception) -> DeadLetter:
    log.exception("message dead-lettered: processing failed")
    return DeadLetter(
        message.value, f"processing failed: {type(exc).__name__}: {exc}"[:500], message.origin
    )


T = TypeVar("T")
R = TypeVar("R")


def isolating(
    parts: Sequence[T],
    run: Callable[[Sequence[T]], R],
    merge: Callable[[R, R], R],
    give_up: Callable[[T, Exception], R],
) -> R:
    """`run(parts)`; if it raises anything but a database error, split `parts` in halves and
    retry each, down to the single parts that fail, which `give_up` turns into a result.

    A poison message (a classifier bug on one odd input, say) must neither stall the stream
    nor lose the rest of its batch. A database error is raised as is: nothing was stored
    and the caller retries the whole batch."""
    try:
        return run(parts)
    except SQLAlchemyError:
        raise
    except Exception as exc:
        if len(parts) == 1:
            return give_up(parts[0], exc)
        log.warning("batch of %d failed (%s); isolating the cause", len(parts), exc)
        middle = len(parts) // 2
        first = isolating(parts[:middle], run, merge, give_up)
        return merge(first, isolating(parts[middle:], run, merge, give_up))


def event_progress(batch: ClassifiedBatch) -> dict[Hashable, datetime]:
    """The newest `published_at` of a batch per input partition (None: a replayed file),
    which drives the alerts' watermark; redelivered items count too (they are the stream)."""
    newest: dict[Hashable, datetime] = {}
    for classified, _ in batch.classified:
        partition = classified.origin.partition if classified.origin else None
        at = classified.item.published_at
        if partition not in newest or at > newest[partition]:
            newest[partition] = at
    return newest


class BatchProcessor:
    """Wires the pure decoder, a classifier and the store together for one batch.

    `on_windows_stored` is told the windows each stored batch touched and the batch's
    newest `published_at` per input partition (`event_progress`: the alert service notes
    the windows for its next evaluation and advances its watermark); the core does not
    know who listens."""

    def __init__(
        self,
        classifier: Classifier,
        store: NewsStore,
        policy: IngestPolicy,
        *,
        on_windows_stored: Callable[[Collection[WindowKey], Mapping[Hashable, datetime]], None]
        | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.classifier = classifier
        self.news_store = store
        self.policy = policy
        self.on_windows_stored = on_windows_stored
        self.clock = clock

    def process(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        """`store(classify(messages))`. Raises only if the database fails, in which case
        nothing was stored and the caller must retry the same batch (offsets are held)."""
        return self.store(self.classify(messages))

    def classify(self, messages: Sequence[RawMessage]) -> ClassifiedBatch:
        """Decode and classify; no database work. Never raises: a message the classifier
        fails on is isolated and dead-lettered with the error as the reason."""
        now = self.clock()
        return isolating(
            messages,
            lambda part: self._classify(part, now),
            ClassifiedBatch.merge,
            lambda message, exc: ClassifiedBatch(
                now, BatchOutcome(dead_letters=[_dead_letter(message, exc)])
            ),
        )

    def store(self, batch: ClassifiedBatch) -> BatchOutcome:
        """Store a classified batch in one transaction (per part, if a poison item has to be
        isolated), then tell `on_windows_stored` the windows it touched. Raises only
        database errors, after which nothing was stored; `batch` is left as it was, so the
        caller can retry it, and stored rows are never counted twice."""
        outcome = BatchOutcome().merge(batch.outcome)
        if batch.classified:
            outcome.merge(
                isolating(
                    batch.classified,
                    lambda part: BatchOutcome(
                        stored=self.news_store.store([c for c, _ in part], now=batch.now)
                    ),
                    BatchOutcome.merge,
                    lambda pair, exc: BatchOutcome(dead_letters=[_dead_letter(pair[1], exc)]),
                )
            )
        if self.on_windows_stored is not None:
            self.on_windows_stored(outcome.stored.windows.keys(), event_progress(batch))
        return outcome

    def _classify(self, messages: Sequence[RawMessage], now: datetime) -> ClassifiedBatch:
        batch = ClassifiedBatch(now)
        items: dict[str, tuple[NewsItem, RawMessage]] = {}
        for message in messages:
            decoded = decode_news(message.value, now=now, policy=self.policy)
            if isinstance(decoded, NewsItem):
                if decoded.id in items:
                    batch.outcome.repeated_in_batch += 1
                    if items[decoded.id][0].content_hash != decoded.content_hash:
                        log.warning(
                            "duplicate id with different content in one batch ignored "
                            "(first write wins)",
                            extra={"item_id": decoded.id},
                        )
                else:
                    items[decoded.id] = (decoded, message)
            else:
                batch.outcome.dead_letters.append(
                    DeadLetter(decoded.raw, decoded.reason, message.origin)
                )
        if items:
            pairs = list(items.values())
            news = [item for item, _ in pairs]
            inputs, targets = model_inputs(news, with_targets=self.classifier.accepts_targets)
            verdicts = split_verdicts(news, targets, self.classifier.classify(inputs))
            batch.classified = [
                (ClassifiedItem(item, own, msg.origin, towards), msg)
                for (item, msg), (own, towards) in zip(pairs, verdicts, strict=True)
            ]
        return batch
