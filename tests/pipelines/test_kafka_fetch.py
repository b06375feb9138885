"""The worker's consumer sends the configured fetch wait, not Faust's fixed 1.5 s."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from harness.stack import KAFKA_BOOTSTRAP
from pipelines.kafka_fetch import bound_fetch_wait

pytestmark = pytest.mark.stack


async def _started_fetch_wait(tmp_path: Path, fetch_max_wait_ms: int | None) -> int:
    """Build the worker consumer of an app as the worker does, start it on the broker,
    and read the wait its fetcher puts in each request."""
    app = faust.App(
        "finmon-fetch-wait-test",
        broker=f"kafka://{KAFKA_BOOTSTRAP}",
        store="memory://",
        datadir=tmp_path,
    )
    if fetch_max_wait_ms is not None:
        bound_fetch_wait(app, fetch_max_wait_ms)
    thread = app.consumer._new_consumer_thread()
    consumer = thread._create_worker_consumer(app.transport)
    await consumer.start()
    try:
        return consumer._fetcher._fetch_max_wait_ms
    finally:
        await consumer.stop()


@pytest.mark.parametrize(("configured", "sent"), [(None, 1500), (100, 100), (5, 5)])
async def test_the_fetcher_uses_the_configured_wait(
    tmp_path: Path, configured: int | None, sent: int
) -> None:
    # None: Faust's own consumer, whose fixed wait is the reason for the override
    assert await _started_fetch_wait(tmp_path, configured) == sent
