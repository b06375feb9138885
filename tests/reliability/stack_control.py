"""Fault injection on the local stack: stopping and restarting PostgreSQL and the broker.

Everything goes through `scripts/stack.sh` (`down kafka|postgres`, `up kafka|postgres`), the
same commands an operator uses, and `outage` restores the component in a `finally`, so a
failing test never leaves the stack down for the tests after it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from harness.stack import KAFKA_BOOTSTRAP, port_open
from harness.worker import REPO

Component = Literal["postgres", "kafka"]
PORTS: dict[Component, int] = {"postgres": 5432, "kafka": 9092}
BIG_MESSAGE_BYTES = 16 * 1024 * 1024
"""Topic `max.message.bytes` for tests that send messages over Kafka's 1 MB default."""


FOREIGN_BROKER = 3
"""`stack.sh down kafka`'s exit status when another checkout's stack runs the broker."""


def stack(*args: str, timeout: float = 300) -> None:
    """Run `scripts/stack.sh ARGS`; fail with its output if it fails (skip, outside CI,
    when the broker to restart belongs to another checkout's stack)."""
    done = subprocess.run(
        ["bash", "scripts/stack.sh", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode == FOREIGN_BROKER and not os.environ.get("CI"):
        pytest.skip(done.stderr.strip())
    if done.returncode != 0:
        raise AssertionError(f"scripts/stack.sh {' '.join(args)} failed:\n{done.stderr}")


@contextmanager
def outage(component: Component) -> Iterator[float]:
    """Stop `component` for the body (yields the monotonic time it went down); always start
    it again, even when the body fails."""
    stack("down", component)
    if port_open("127.0.0.1", PORTS[component]):
        raise AssertionError(f"{component} still answers after `stack.sh down {component}`")
    try:
        yield time.monotonic()
    finally:
        stack("up", component)


def committed_offsets(group: str, topic: str) -> dict[int, int]:
    """The consumer group's committed offsets of `topic`, by partition (the next offset each
    partition will be read from after a restart: everything below it is done)."""
    admin = KafkaAdminClient(bootstrap_servers=[KAFKA_BOOTSTRAP])
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def create_topics(names: list[str], partitions: int = 4, max_message_bytes: int = 0) -> None:
    """Create topics up front (the worker keeps existing ones), optionally with a larger
    `max.message.bytes` than the broker's 1 MB default."""
    configs = {"max.message.bytes": str(max_message_bytes)} if max_message_bytes else {}
    admin = KafkaAdminClient(bootstrap_servers=[KAFKA_BOOTSTRAP])
    try:
        admin.create_topics(
            [
                NewTopic(n, num_partitions=partitions, replication_factor=1, topic_configs=configs)
                for n in names
            ]
        )
    finally:
        admin.close()


def create_login_role(role: str, password: str, member_of: str = "finmon") -> bool:
    """Create (or re-password) a PostgreSQL login role inheriting `member_of`'s rights, as
    the `postgres` superuser the way `scripts/stack.sh` reaches it (root: runuser, else
    sudo); False where that is not possible. psql variables quote the values."""
    if os.geteuid() == 0:
        as_postgres = ["runuser", "-u", "postgres", "--"]
    else:
        as_postgres = ["sudo", "-n", "-u", "postgres", "--"]
    sql = (
        "SELECT format('CREATE ROLE %I LOGIN', :'role')"
        " WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec\n"
        "ALTER ROLE :\"role\" LOGIN PASSWORD :'pw';\n"
        'GRANT :"member" TO :"role";\n'
    )
    variables = {"role": role, "pw": password, "member": member_of, "ON_ERROR_STOP": "1"}
    command = [*as_postgres, "psql", "-X", "-q", "-p", "5432", "-d", "postgres"]
    for name, value in variables.items():
        command += ["-v", f"{name}={value}"]
    try:
        done = subprocess.run(command, input=sql, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
