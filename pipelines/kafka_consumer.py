"""The worker's Kafka consumer: a bounded fetch wait, and commits that never skip a record.

**Fetch wait** (`kafka.fetch_max_wait_ms`). aiokafka keeps one fetch request in flight per
broker. A partition whose records were still buffered when that request was built is left
out of it, and is fetched again only once the request returns: when data arrives in one of
the partitions it names, or after its maximum wait. Faust fixes that wait at 1.5 s and does
not expose it, so on a quiet or bursty feed a news item could sit 1.5 s in the broker before
the worker saw it; at half load those waits were the benchmark's latency tail
(docs/performance.md). A short wait bounds that delay; the cost is one fetch request per
wait while the input is idle. Faust builds the consumer in
`AIOKafkaConsumerThread._create_worker_consumer`, with no setting for the wait; the thread
below changes only that value, on the aiokafka consumer before it starts.

**Commits.** finmon acks a record once it is stored (or dead-lettered) and published, and
the committed offset must never pass a record that is not: a worker taking the partition
over starts there. Faust's own bookkeeping breaks that across a rebalance (docs/reliability.md,
"A record skipped across a rebalance"): it remembers the highest offset it has read per
partition and silently drops any record below it, so a record fetched before a seek and
handed out after it (Faust issues #216, #221) makes the records between the seek position and
it vanish; it counts offsets it skipped while reading as finished ("gaps", meant for
compacted topics); and it commits past a hole of one offset. The consumer below keeps
none of that:

* it remembers no read offset, so every record fetched is handed to the pipeline, a record
  read twice is processed twice (stored once: the store is idempotent) and nothing is
  counted as finished unless the pipeline acked it;
* per partition it keeps a *floor*, the position the partition was sought to (its committed
  offset, or where the reset policy put it); every record from there on is handed out after
  that seek, and the commit moves only through acked offsets that continue the floor
  (`commit_position`, pure). A partition the worker was not given by the latest assignment
  has no floor and gets no commit.

So finmon's input topic must have no holes in its offsets: it is not compacted, and not
written in transactions (their markers take offsets); finmon's own producers write it that
way. A hole would hold the partition's commits, which the stall watch reports
(pipelines/progress.py) rather than skipping records silently.

tests/pipelines/test_kafka_consumer.py starts one on the broker and reads the wait its
fetcher sends, and drives the commit bookkeeping with the acks of a rebalance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from pipelines.commit_position import commit_position

log = logging.getLogger(__name__)


class _NoReadOffsets(MutableMapping[TP, int | None]):
    """Faust's read offsets, never kept: every lookup says "nothing read yet", so Faust
    neither drops a record below a remembered offset nor records a gap."""

    def __getitem__(self, tp: TP) -> int | None:
        return None

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        pass

    def __delitem__(self, tp: TP) -> None:
        pass

    def __iter__(self) -> Iterator[TP]:
        return iter(())

    def __len__(self) -> int:
        return 0


def install_consumer(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Give `app`'s worker the consumer described above, waiting at most
    `fetch_max_wait_ms` per fetch request."""

    class Thread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by start()
            return consumer

    class Consumer(faust_aiokafka.Consumer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._read_offset = _NoReadOffsets()
            self._floors: dict[TP, int] = {}

        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return Thread(self, loop=self.loop, beacon=self.beacon)

        async def perform_seek(self) -> None:
            # Faust seeks every assigned partition to its committed offset (at assignment,
            # and whenever it reads while its flow is stopped); the position the consumer
            # then holds is where the pipeline is handed records from.
            await super().perform_seek()
            floors: dict[TP, int] = {}
            for tp in self.assignment():
                position = await self.position(tp)
                if position is None:
                    log.warning("no position for %s after seeking: no commits for it", tp)
                else:
                    floors[tp] = position
            self._floors = floors

        async def seek(self, partition: TP, offset: int) -> None:
            await super().seek(partition, offset)
            self._floors[partition] = offset

        def _new_offset(self, tp: TP) -> int | None:
            floor = self._floors.get(tp)
            if floor is None:
                return None
            acked = self._acked[tp]
            position, waiting = commit_position(floor, acked)
            acked[:] = waiting
            self._acked_index[tp].intersection_update(waiting)
            if position == floor:
                return None
            self._floors[tp] = position
            return position

    # Transport.Consumer is a ClassVar in faust's types; this app's transport gets its own
    app.transport.Consumer = Consumer  # type: ignore[misc]
