"""The worker's Kafka producer: acks from every in-sync replica, and idempotent.

finmon acks an input batch only after its dead letters and classified items are on the
broker. With `acks=all` "on the broker" means on every in-sync replica (at least
`min.insync.replicas` of them), so a leader that dies right after acknowledging loses
nothing; with idempotence, a send retried across that failover is written once, not twice.
Faust passes `acks` through but enables idempotence only inside transactions, which finmon
does not use; the subclass below adds it, the same way `kafka_consumer` adjusts the consumer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

PRODUCER_SETTINGS: Mapping[str, Any] = {"acks": "all", "enable_idempotence": True}


def idempotent_producer(app: faust.App) -> None:
    """Make `app`'s producer wait for all in-sync replicas and send idempotently."""

    class Producer(faust_aiokafka.Producer):
        def _settings_extra(self) -> Mapping[str, Any]:
            return {**super()._settings_extra(), **PRODUCER_SETTINGS}

    app.transport.Producer = Producer  # type: ignore[misc]
