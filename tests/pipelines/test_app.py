"""The Faust adapter's one piece of logic: turning a Kafka event into a raw message."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from monitor.contract import IngestPolicy
from monitor.db.store import NewsStore
from monitor.pipeline_types import Origin
from monitor.processing import BatchProcessor
from pipelines.app import _raw_message
from tests.doubles import KeywordClassifier


def event(value: bytes | None, timestamp: float | None = 1_767_225_600.0) -> Any:
    message = SimpleNamespace(
        value=value, topic="news.raw", partition=2, offset=41, timestamp=timestamp
    )
    return SimpleNamespace(message=message)


def test_an_event_keeps_its_bytes_and_position() -> None:
    raw = _raw_message(event(b'{"id": "a"}'))
    assert raw.value == b'{"id": "a"}'
    assert raw.origin == Origin("news.raw", 2, 41, datetime(2026, 1, 1, tzinfo=UTC))
    assert _raw_message(event(b"x", timestamp=None)).origin == Origin("news.raw", 2, 41, None)


def test_a_tombstone_is_dead_lettered_not_a_crash(sqlite_engine: Any) -> None:
    raw = _raw_message(event(None))
    processor = BatchProcessor(KeywordClassifier(), NewsStore(sqlite_engine, []), IngestPolicy())
    outcome = processor.process([raw])
    assert [letter.origin for letter in outcome.dead_letters] == [raw.origin]
    assert outcome.stored.inserted == []
