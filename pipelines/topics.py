"""Creating finmon's topics before the worker subscribes.

A consumer that subscribes to a topic that does not exist yet is assigned nothing, and may
not notice the topic once a producer auto-creates it. Creating the input, output and
dead-letter topics up front (idempotently) removes that race.
"""

from __future__ import annotations

import contextlib
import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from monitor.settings import IngestSettings, KafkaSettings
from pipelines.kafka_security import kafka_python_config

log = logging.getLogger(__name__)


# Room for the dead-letter headers and the record framing around the largest accepted value.
_RECORD_OVERHEAD_BYTES = 64 * 1024


def record_limit(max_message_bytes: int) -> int:
    """The largest Kafka record finmon produces: a dead letter of the largest message."""
    return max_message_bytes + _RECORD_OVERHEAD_BYTES


def ensure_topics(
    kafka: KafkaSettings,
    *,
    max_message_bytes: int = IngestSettings().max_message_bytes,
    replication_factor: int = 1,
) -> list[str]:
    """Create any missing finmon topic; returns the names that were created.

    Topics are created accepting records as large as the largest message finmon accepts
    (plus dead-letter headers), so an oversized-but-valid message is never stuck between a
    broker limit and the dead-letter topic."""
    admin = KafkaAdminClient(client_id="finmon-admin", **kafka_python_config(kafka))
    try:
        existing = set(admin.list_topics())
        wanted = [kafka.input_topic, kafka.output_topic, kafka.dead_letter_topic]
        missing = [
            NewTopic(
                name,
                num_partitions=kafka.input_partitions,
                replication_factor=replication_factor,
                topic_configs={"max.message.bytes": str(record_limit(max_message_bytes))},
            )
            for name in dict.fromkeys(wanted)
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
        return [t.name for t in missing]
    finally:
        admin.close()
