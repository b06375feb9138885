"""The local Kafka + PostgreSQL stack (`scripts/stack.sh up`) as the tests and benchmarks
reach it; each address can be overridden from the environment."""

from __future__ import annotations

import os
import socket

PG_URL = os.environ.get(
    "FINMON_TEST_PG_URL", "postgresql+psycopg://finmon:finmon@127.0.0.1:5432/finmon_test"
)
KAFKA_BOOTSTRAP = os.environ.get("FINMON_TEST_KAFKA", "127.0.0.1:9092")


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on `host:port` (within a second)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
