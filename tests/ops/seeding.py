"""Filling a test database through finmon's real path: sample feed, decode, classify, store,
alerts. Only the model is replaced, by the deterministic `KeywordClassifier`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from finmon.runtime import build_runtime
from monitor.sample import SampleSpec, write_jsonl
from monitor.settings import Settings, load_settings
from pipelines.replay import ReplaySummary, replay
from tests.doubles import KeywordClassifier


def write_config(folder: Path, database_url: str) -> Path:
    """A config file using `database_url`; everything else is finmon's default."""
    path = folder / "config.toml"
    path.write_text(f"[database]\nurl = {json.dumps(database_url)}\n", encoding="utf-8")
    return path


def replay_sample(
    config: Path,
    end: datetime,
    *,
    hours: float = 6,
    per_hour: int = 60,
    extra: Sequence[dict[str, Any]] = (),
) -> tuple[Settings, ReplaySummary]:
    """Replay a generated sample ending at `end` (with its negative episode on BA), then the
    `extra` news documents."""
    settings = load_settings(config)
    feed = config.parent / "sample.jsonl"
    write_jsonl(str(feed), SampleSpec(end=end, hours=hours, per_hour=per_hour))
    with feed.open("a", encoding="utf-8") as out:
        out.writelines(json.dumps(doc) + "\n" for doc in extra)
    runtime = build_runtime(settings, classifier=KeywordClassifier(), migrate=True)
    try:
        summary = replay(
            runtime.processor,
            runtime.alerts,
            feed,
            batch_size=settings.batching.max_batch_size,
            progress=False,
        )
        return settings, summary
    finally:
        runtime.close()
