"""`finmon replay`: the worker's processing over a JSONL file, without Kafka.

Each line is one message, exactly as it would arrive on the input topic, and each batch goes
through the same `BatchProcessor.process` as the worker's. Rejected lines are written, with
their reason and line number, to a dead-letter JSONL file beside the input, so nothing is
lost here either.

Alerts are judged as the worker judges them (closed windows, in event time). Incidents in
windows older than `alerts.notify_max_age` are history: stored, with the reason, never
delivered, so a replay of old data emails no one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from alerts.service import AlertService
from monitor.pipeline_types import DeadLetter, Origin, RawMessage
from monitor.processing import BatchProcessor


@dataclass(slots=True)
class ReplaySummary:
    lines: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    windows_written: int = 0
    incidents: int = 0
    """Alert incidents this replay found."""
    history: int = 0
    """Of those, incidents stored as history: never delivered (`alerts.notify_max_age`)."""
    alerts: int = 0
    """Alert messages delivered."""
    dead_letter_file: Path | None = None

    def __str__(self) -> str:
        text = (
            f"lines read: {self.lines}\nitems stored: {self.stored}\n"
            f"duplicates skipped: {self.duplicates}\nrejected: {self.rejected}\n"
            f"windows written: {self.windows_written}\n"
            f"alert incidents: {self.incidents} ({self.history} stored as history, not "
            f"delivered)\nalert messages delivered: {self.alerts}"
        )
        if self.dead_letter_file:
            text += f"\nrejected lines written to: {self.dead_letter_file}"
        return text


def _batches(path: Path, size: int) -> Iterator[list[RawMessage]]:
    batch: list[RawMessage] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            batch.append(RawMessage(raw, Origin(topic=str(path), offset=number)))
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def _dead_letter_line(letter: DeadLetter) -> str:
    try:
        raw: dict[str, str] = {"raw": letter.raw.decode("utf-8")}
    except UnicodeDecodeError:
        raw = {"raw_base64": base64.b64encode(letter.raw).decode()}
    line = letter.origin.offset if letter.origin else None
    return json.dumps({"line": line, "reason": letter.reason, **raw}, ensure_ascii=False)


def replay(
    processor: BatchProcessor,
    alerts: AlertService | None,
    path: Path,
    *,
    batch_size: int,
    progress: bool = True,
) -> ReplaySummary:
    """Run every line of `path` through `processor`, in batches of `batch_size`; with an
    alert service, judge the windows as the worker's timer would, and all of them at the
    end, then deliver the notifications."""
    summary = ReplaySummary()
    started = datetime.now(UTC)
    windows: set[object] = set()
    dlq_path = path.with_name(path.name + ".rejected.jsonl")
    dlq = None
    try:
        with tqdm(desc="replay", unit="msg", disable=not progress) as bar:
            for batch in _batches(path, batch_size):
                outcome = processor.process(batch)
                if alerts is not None:
                    alerts.evaluate_due()  # as the worker's timer would
                summary.lines += len(batch)
                summary.stored += len(outcome.stored.inserted)
                summary.duplicates += len(outcome.stored.duplicates) + outcome.repeated_in_batch
                summary.rejected += len(outcome.dead_letters)
                windows.update(outcome.stored.windows)
                for letter in outcome.dead_letters:
                    if dlq is None:
                        dlq = dlq_path.open("w", encoding="utf-8")
                        summary.dead_letter_file = dlq_path
                    dlq.write(_dead_letter_line(letter) + "\n")
                bar.update(len(batch))
    finally:
        if dlq is not None:
            dlq.close()
    summary.windows_written = len(windows)
    if alerts is not None:
        alerts.finish_input()  # the file has ended: every window is closed
        alerts.evaluate_pending()  # judge what the last batches wrote
        alerts.sweep(datetime.now(UTC))  # resolve episodes that ended in the file
        summary.alerts = alerts.deliver_pending_until_idle()
        summary.incidents, summary.history = alerts.incidents_detected_since(started)
    return summary
