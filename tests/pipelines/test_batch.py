"""The batch pipeline's contract, on a plain event loop with fake I/O (no Kafka, no Faust).

Events are ints; a batch is classified into the list of its ints, and the fakes record what
was stored, published and acked, in order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.pipeline_types import RawMessage
from monitor.processing import BatchOutcome
from pipelines.batch import BatchPipeline, PipelineHooks, PipelineLimits

LIMITS = PipelineLimits(
    max_batch_size=4, max_wait_s=0.01, max_in_flight=3, retry_initial_s=0.01, retry_max_s=0.02
)
RUN_TIMEOUT_S = 20


class StoreDown(Exception):
    """A retryable storage error (the database is away for a moment)."""


class Broken(Exception):
    """An error that is not retryable."""


@dataclass
class Fakes(PipelineHooks):
    """The pipeline's I/O, recording each call; `store_failures[n]` failures for the batch
    whose first event is n, then success."""

    store_failures: dict[int, list[Exception]] = field(default_factory=dict)
    publish_fails_on: int | None = None
    classify_delay_s: dict[int, float] = field(default_factory=dict)
    store_gate: threading.Event = field(default_factory=lambda: _opened())
    classified: list[list[int]] = field(default_factory=list)
    stored: list[list[int]] = field(default_factory=list)
    published: list[list[int]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    storage_errors: list[Exception] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)

    def classify(self, messages: list[RawMessage]) -> list[int]:
        batch = [int(m.value) for m in messages]
        time.sleep(self.classify_delay_s.get(batch[0], 0))
        self.classified.append(batch)
        return batch

    def store(self, batch: list[int]) -> BatchOutcome:
        self.store_gate.wait()
        failures = self.store_failures.get(batch[0], [])
        if failures:
            raise failures.pop(0)
        self.stored.append(batch)
        return BatchOutcome(repeated_in_batch=batch[0])  # a marker publish can read

    async def publish(self, outcome: BatchOutcome) -> None:
        first = outcome.repeated_in_batch
        if first == self.publish_fails_on:
            raise Broken("the broker refused the batch")
        self.published.append(self.stored[-1])

    async def ack(self, events: Sequence[int]) -> None:
        self.acked.extend(events)

    def on_batch(
        self, messages: Sequence[RawMessage], outcome: BatchOutcome, started: object
    ) -> None:
        self.finished.append(len(messages))

    def on_storage_error(self, exc: Exception) -> None:
        self.storage_errors.append(exc)

    def pipeline(self, limits: PipelineLimits = LIMITS) -> BatchPipeline[int, list[int]]:
        return BatchPipeline(
            classify=self.classify,
            store=self.store,
            publish=self.publish,
            ack=self.ack,
            message_of=lambda event: RawMessage(str(event).encode()),
            limits=limits,
            retryable=(StoreDown,),
            hooks=self,
        )


def _opened() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


class Source:
    """An async stream of 0..count-1 that counts how many events were pulled from it;
    with `hold`, it waits forever after the last one (a live stream that went quiet)."""

    def __init__(self, count: int, *, hold: bool = False) -> None:
        self.count = count
        self.hold = hold
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[int]:
        for event in range(self.count):
            self.pulled += 1
            yield event
            await asyncio.sleep(0)
        if self.hold:
            await asyncio.Event().wait()


async def run(fakes: Fakes, source: Source, limits: PipelineLimits = LIMITS) -> None:
    await asyncio.wait_for(fakes.pipeline(limits).run(source), RUN_TIMEOUT_S)


async def test_every_event_is_acked_once_in_order_when_the_stream_ends() -> None:
    fakes = Fakes()
    await run(fakes, Source(23))
    assert fakes.acked == list(range(23))
    assert [e for batch in fakes.stored for e in batch] == list(range(23))
    assert fakes.published == fakes.stored
    assert sum(fakes.finished) == 23
    assert all(len(batch) <= LIMITS.max_batch_size for batch in fakes.classified)


async def test_batches_are_stored_and_acked_in_order_whatever_order_they_are_classified_in() -> (
    None
):
    # the first batch is classified slowly, the next ones overtake it on the second thread
    fakes = Fakes(classify_delay_s={0: 0.3})
    await run(fakes, Source(12))
    assert fakes.classified[0] != [0, 1, 2, 3]  # a later batch was classified first
    assert fakes.stored == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert fakes.acked == list(range(12))


async def test_a_store_failure_is_retried_and_later_batches_wait_for_it() -> None:
    fakes = Fakes(store_failures={0: [StoreDown("connection lost"), StoreDown("still down")]})
    await run(fakes, Source(12))
    assert [str(e) for e in fakes.storage_errors] == ["connection lost", "still down"]
    assert fakes.stored == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert fakes.acked == list(range(12))  # each once, in order, after the retries


async def test_a_publish_failure_ends_the_run_with_that_batch_and_later_ones_unacked() -> None:
    fakes = Fakes(publish_fails_on=4)
    with pytest.raises(ExceptionGroup) as raised:
        await run(fakes, Source(12))
    assert raised.value.subgroup(Broken) is not None
    assert fakes.acked == [0, 1, 2, 3]


async def test_a_store_error_that_is_not_retryable_ends_the_run_unacked() -> None:
    fakes = Fakes(store_failures={0: [Broken("schema missing")]})
    with pytest.raises(ExceptionGroup) as raised:
        await run(fakes, Source(8))
    assert raised.value.subgroup(Broken) is not None
    assert fakes.acked == [] and fakes.storage_errors == []


async def test_at_most_max_in_flight_batches_are_taken_while_storing_is_stuck() -> None:
    fakes = Fakes(store_gate=threading.Event())  # storing blocks until the gate opens
    source = Source(200)
    task = asyncio.create_task(fakes.pipeline().run(source))
    await asyncio.sleep(0.5)
    assert len(fakes.classified) == LIMITS.max_in_flight
    assert fakes.acked == []
    # the intake stops, too: the taken batches plus two batches' worth wait, no more
    assert source.pulled <= (LIMITS.max_in_flight + 2) * LIMITS.max_batch_size + 1
    fakes.store_gate.set()
    await asyncio.wait_for(task, RUN_TIMEOUT_S)
    assert fakes.acked == list(range(200))


async def test_shutdown_mid_batch_leaves_the_batch_unacked() -> None:
    fakes = Fakes(store_gate=threading.Event())
    task = asyncio.create_task(fakes.pipeline().run(Source(6, hold=True)))
    await asyncio.sleep(0.3)  # the first batch is being stored, the second queued behind it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fakes.store_gate.set()  # the store thread finishes; nothing may be acked for it
    await asyncio.sleep(0.1)
    assert fakes.acked == []
    assert fakes.published == []


async def test_a_quiet_stream_cuts_a_partial_batch_after_max_wait() -> None:
    fakes = Fakes()
    task = asyncio.create_task(fakes.pipeline().run(Source(3, hold=True)))
    await asyncio.sleep(0.3)
    assert fakes.acked == [0, 1, 2]  # not waiting for a fourth event, nor for the end
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        PipelineLimits(max_batch_size=4, max_wait_s=0.1, max_in_flight=0)
    with pytest.raises(ValueError):
        PipelineLimits(max_batch_size=4, max_wait_s=0.1, retry_initial_s=2, retry_max_s=1)


@settings(max_examples=25)
@given(
    count=st.integers(min_value=1, max_value=40),
    batch_size=st.integers(min_value=1, max_value=8),
    in_flight=st.integers(min_value=1, max_value=4),
    failures=st.dictionaries(st.integers(0, 39), st.integers(1, 2), max_size=4),
)
def test_any_stream_is_acked_exactly_once_in_order(
    count: int, batch_size: int, in_flight: int, failures: dict[int, int]
) -> None:
    limits = PipelineLimits(
        max_batch_size=batch_size,
        max_wait_s=0.002,
        max_in_flight=in_flight,
        retry_initial_s=0.001,
        retry_max_s=0.002,
    )
    fakes = Fakes(store_failures={first: [StoreDown("down")] * n for first, n in failures.items()})
    asyncio.run(run(fakes, Source(count), limits))
    assert fakes.acked == list(range(count))
    assert [e for batch in fakes.stored for e in batch] == list(range(count))
