"""`finmon produce`: publish a JSONL file to Kafka with kafka-python (backfills, demos)."""

from __future__ import annotations

import json
from pathlib import Path

from kafka import KafkaProducer
from tqdm import tqdm

from monitor.settings import KafkaSettings
from pipelines.kafka_security import kafka_python_config


def _key(line: bytes) -> bytes | None:
    """The item id as the message key, so one id always lands on one partition."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    item_id = doc.get("id") if isinstance(doc, dict) else None
    return item_id.encode() if isinstance(item_id, str) else None


def produce_file(kafka: KafkaSettings, path: Path, topic: str, *, progress: bool = True) -> int:
    """Send every non-empty line of `path` as one message; waits until all are acknowledged
    by every in-sync replica. Idempotent, so a retry across a broker failover is not a
    second copy."""
    producer = KafkaProducer(
        acks="all", enable_idempotence=True, linger_ms=20, **kafka_python_config(kafka)
    )
    count = 0
    try:
        with (
            path.open("rb") as lines,
            tqdm(desc="produce", unit="msg", disable=not progress) as bar,
        ):
            for line in lines:
                raw = line.rstrip(b"\r\n")
                if not raw.strip():
                    continue
                producer.send(topic, value=raw, key=_key(raw))
                count += 1
                bar.update()
        producer.flush()
    finally:
        producer.close()
    return count
