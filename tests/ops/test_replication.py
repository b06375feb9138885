"""How replicated finmon's topics are, given the cluster (pipelines/topics.py)."""

from __future__ import annotations

import pytest

from pipelines.topics import Replication, replication_for


@pytest.mark.parametrize(
    ("brokers", "factor", "min_insync", "expected"),
    [
        (3, 3, 2, Replication(3, 2)),  # the production shape
        (1, 3, 2, Replication(1, 1)),  # the single local broker
        (2, 3, 2, Replication(2, 1)),  # one broker may still fail without refusing writes
        (5, 3, 2, Replication(3, 2)),  # more brokers than replicas wanted
        (3, 3, 3, Replication(3, 2)),  # min ISR = factor would stop writes on any failure
        (3, 1, 2, Replication(1, 1)),
        (0, 3, 2, Replication(1, 1)),  # a broker count not known yet: never 0 replicas
    ],
)
def test_replication_is_capped_by_the_cluster(
    brokers: int, factor: int, min_insync: int, expected: Replication
) -> None:
    assert replication_for(brokers, factor, min_insync) == expected
