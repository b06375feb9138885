"""Creating finmon's topics before the worker subscribes.

A consumer that subscribes to a topic that does not exist yet is assigned nothing, and may
not notice the topic once a producer auto-creates it. Creating the input, output and
dead-letter topics up front (idempotently) removes that race. They are created replicated
as configured, as far as the cluster allows (`replication_for`): on a cluster, a broker
that fails loses no acknowledged message and stops no writes.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Replication:
    """How the topics finmon creates are replicated."""

    factor: int
    min_insync: int


def replication_for(brokers: int, factor: int, min_insync: int) -> Replication:
    """The configured replication, as far as a cluster of `brokers` allows: no more replicas
    than brokers, and `min.insync.replicas` at most the factor less one (at least 1), so that
    with acks=all one broker may be down without refusing writes."""
    actual = max(min(factor, brokers), 1)
    return Replication(actual, max(min(min_insync, actual - 1), 1))


def ensure_topics(
    kafka: KafkaSettings,
    *,
    max_message_bytes: int = IngestSettings().max_message_bytes,
) -> Replication:
    """Create any missing finmon topic; returns the replication used (for Faust's own topics).

    Topics are created accepting records as large as the largest message finmon accepts
    (plus dead-letter headers), so an oversized-but-valid message is never stuck between a
    broker limit and the dead-letter topic."""
    admin = KafkaAdminClient(client_id="finmon-admin", **kafka_python_config(kafka))
    try:
        brokers = len(admin.describe_cluster()["brokers"])
        replication = replication_for(
            brokers, kafka.topic_replication_factor, kafka.topic_min_insync_replicas
        )
        if replication.factor < kafka.topic_replication_factor:
            log.info(
                "the cluster has %d broker(s): topics get %d replica(s), not %d",
                brokers,
                replication.factor,
                kafka.topic_replication_factor,
            )
        existing = set(admin.list_topics())
        wanted = [kafka.input_topic, kafka.output_topic, kafka.dead_letter_topic]
        configs = {
            "max.message.bytes": str(record_limit(max_message_bytes)),
            "min.insync.replicas": str(replication.min_insync),
        }
        missing = [
            NewTopic(
                name,
                num_partitions=kafka.input_partitions,
                replication_factor=replication.factor,
                topic_configs=configs,
            )
            for name in dict.fromkeys(wanted)
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                admin.create_topics(missing)
            log.info(
                "created topics %s (replication factor %d, min.insync.replicas %d)",
                [t.name for t in missing],
                replication.factor,
                replication.min_insync,
            )
        return replication
    finally:
        admin.close()
