"""Fixtures of the cluster tests: the local 3-broker cluster and a database of their own.

The cluster is `scripts/stack.sh cluster` (brokers on 127.0.0.1:19092-19094, its own state
directory): it never touches the single broker on 9092 that the other tests use. A session
that finds it down starts it and stops it again at the end, so three JVMs do not stay behind
on a small machine; one that finds it running leaves it running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kafka.admin import KafkaAdminClient
from sqlalchemy import Engine, make_url

from harness.stack import PG_URL, port_open
from harness.worker import REPO
from tests.alerts.conftest import webhook  # noqa: F401  (the alert tests' receiver)
from tests.conftest import require_stack
from tests.reliability.conftest import emptied_around, migrated_database

CLUSTER_BOOTSTRAP = os.environ.get(
    "FINMON_TEST_KAFKA_CLUSTER", "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
)
CLUSTER_PG_URL = os.environ.get(
    "FINMON_TEST_CLUSTER_PG_URL",
    make_url(PG_URL).set(database="finmon_cluster").render_as_string(hide_password=False),
)


def stack_cluster(*args: str, timeout: float = 300) -> None:
    done = subprocess.run(
        ["bash", "scripts/stack.sh", "cluster", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"scripts/stack.sh cluster {' '.join(args)} failed:\n{done.stderr}")


@dataclass(frozen=True)
class Cluster:
    """The running cluster: its brokers and the faults a test can inject into them."""

    bootstrap: str

    @property
    def servers(self) -> list[str]:
        return self.bootstrap.split(",")

    def kill(self, broker: int) -> None:
        """SIGKILL broker `broker` (its node number, 1..3, which is its broker id)."""
        stack_cluster("kill", str(broker))

    def start(self, broker: int) -> None:
        """Start broker `broker` again; returns once the cluster lists it."""
        stack_cluster("start", str(broker))

    def leaders(self, topic: str) -> dict[int, int]:
        """The leader broker of each partition of `topic`."""
        admin = KafkaAdminClient(bootstrap_servers=self.servers)
        try:
            [described] = admin.describe_topics([topic])
        finally:
            admin.close()
        return {p["partition_index"]: p["leader_id"] for p in described["partitions"]}


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    require_stack()  # PostgreSQL (and the single broker the other fixtures expect)
    hosts = [server.rsplit(":", 1) for server in CLUSTER_BOOTSTRAP.split(",")]
    running = all(port_open(host, int(port)) for host, port in hosts)
    if not running and shutil.which("java") is None:
        message = "the 3-broker cluster needs Java 17 (scripts/stack.sh cluster up)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not running:
        stack_cluster("up")
    try:
        yield Cluster(CLUSTER_BOOTSTRAP)
    finally:
        if not running:
            stack_cluster("down")


@pytest.fixture(scope="session")
def cluster_engine_session() -> Iterator[Engine]:
    yield from migrated_database(CLUSTER_PG_URL)


@pytest.fixture
def cluster_engine(cluster_engine_session: Engine) -> Iterator[Engine]:
    """The cluster tests' database, empty at the start of the test and emptied after it."""
    yield from emptied_around(cluster_engine_session)
