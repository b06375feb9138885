"""The worker's Kafka consumer with a bounded fetch wait (`kafka.fetch_max_wait_ms`).

aiokafka keeps one fetch request in flight per broker. A partition whose records were still
buffered when that request was built is left out of it, and is fetched again only once the
request returns: when data arrives in one of the partitions it names, or after its maximum
wait. Faust fixes that wait at 1.5 s and does not expose it, so on a quiet or bursty feed a
news item could sit 1.5 s in the broker before the worker saw it; at half load those waits
were the benchmark's latency tail (docs/performance.md). A short wait bounds
that delay; the cost is one fetch request per wait while the input is idle.

Faust builds the consumer in `AIOKafkaConsumerThread._create_worker_consumer`, with no
setting for the wait. The subclasses below change only that value, on the aiokafka consumer
before it starts (its `Fetcher` is built from it in `start()`);
tests/pipelines/test_kafka_fetch.py starts one on the broker and reads the wait its fetcher sends.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


def bound_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Make `app`'s worker consumer wait at most `fetch_max_wait_ms` per fetch request."""

    class Thread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by start()
            return consumer

    class Consumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return Thread(self, loop=self.loop, beacon=self.beacon)

    # Transport.Consumer is a ClassVar in faust's types; this app's transport gets its own
    app.transport.Consumer = Consumer  # type: ignore[misc]
