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

from monitor.settings import KafkaSettings
from pipelines.kafka_security import kafka_python_config

log = logging.getLogger(__name__)


def ensure_topics(kafka: KafkaSettings, *, replication_factor: int = 1) -> list[str]:
    """Create any missing finmon topic; returns the names that were created."""
    admin = KafkaAdminClient(client_id="finmon-admin", **kafka_python_config(kafka))
    try:
        existing = set(admin.list_topics())
        wanted = [kafka.input_topic, kafka.output_topic, kafka.dead_letter_topic]
        missing = [
            NewTopic(
                name, num_partitions=kafka.input_partitions, replication_factor=replication_factor
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
