"""finmon's topics on the 3-broker cluster: three replicas, two in sync required."""

from __future__ import annotations

import uuid

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from monitor.settings import KafkaSettings
from pipelines.topics import Replication, ensure_topics
from tests.cluster.conftest import Cluster

pytestmark = [pytest.mark.stack, pytest.mark.cluster]


def test_topics_are_created_replicated(cluster: Cluster) -> None:
    suffix = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(
        bootstrap_servers=cluster.servers,
        input_topic=f"raw.topics-{suffix}",
        output_topic=f"classified.topics-{suffix}",
        dead_letter_topic=f"dlq.topics-{suffix}",
        input_partitions=6,
    )
    assert ensure_topics(kafka) == Replication(3, 2)
    admin = KafkaAdminClient(bootstrap_servers=cluster.servers)
    try:
        topics = [kafka.input_topic, kafka.output_topic, kafka.dead_letter_topic]
        for described in admin.describe_topics(topics):
            assert len(described["partitions"]) == 6
            assert all(len(p["replica_nodes"]) == 3 for p in described["partitions"])
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        configs = admin.describe_configs(resources)["topic"]
        assert {t: configs[t]["min.insync.replicas"]["value"] for t in topics} == dict.fromkeys(
            topics, "2"
        )
    finally:
        admin.close()
