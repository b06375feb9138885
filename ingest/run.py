"""Assembling and running `finmon ingest`: database, producer, HTTP session, feeds, web."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer

from ingest.daemon import IngestMetrics, Ingestor, web_app
from ingest.seen import SeenIds
from monitor.db.engine import make_engine
from monitor.settings import Settings
from pipelines.kafka_security import ssl_context

log = logging.getLogger(__name__)


def producer(settings: Settings) -> AIOKafkaProducer:
    """key = id, acks = all, idempotent: a retried send is never written twice."""
    kafka = settings.kafka
    options: dict[str, object] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "client_id": "finmon-ingest",
        "security_protocol": kafka.security_protocol,
        "linger_ms": 20,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(kafka)
    if kafka.sasl_mechanism:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        password = kafka.sasl_password
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return AIOKafkaProducer(**options)


async def run_ingest(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop`): every feed on its timer, the seen-ids horizon
    swept hourly, /health and /metrics on `web.host`:`ingest.web_port`."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    engine = make_engine(settings.database_url)
    seen = SeenIds(engine)
    metrics = IngestMetrics()
    kafka = producer(settings)
    await kafka.start()
    topic = settings.kafka.input_topic

    async def publish(messages: list[tuple[str, bytes]]) -> None:
        futures = [await kafka.send(topic, value, key=key.encode()) for key, value in messages]
        await asyncio.gather(*futures)

    runner = web.AppRunner(web_app(metrics))
    await runner.setup()
    site = web.TCPSite(runner, settings.web.host, settings.ingest.web_port)
    await site.start()
    headers = {"User-Agent": settings.ingest.user_agent}
    async with aiohttp.ClientSession(headers=headers, auto_decompress=True) as session:
        ingestor = Ingestor(settings, session, seen, publish, metrics)
        tasks = [asyncio.create_task(ingestor.run_feed(f)) for f in settings.ingest.feeds]
        tasks.append(asyncio.create_task(_sweep(seen, settings, stop)))
        log.info("ingesting %d feeds into %s", len(settings.ingest.feeds), topic)
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await runner.cleanup()
    await kafka.stop()
    engine.dispose()


async def ingest_once(settings: Settings, output: Path) -> str:
    """Poll every feed once, appending new entries to `output` as JSON lines (what would
    have been published); the ids are marked seen as after a publish. For demos and
    backfills without Kafka: `finmon replay` takes the file."""
    engine = make_engine(settings.database_url)
    metrics = IngestMetrics()
    written = 0

    async def append(messages: list[tuple[str, bytes]]) -> None:
        nonlocal written
        with output.open("ab") as out:
            out.writelines(value + b"\n" for _, value in messages)
        written += len(messages)

    headers = {"User-Agent": settings.ingest.user_agent}
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            ingestor = Ingestor(settings, session, SeenIds(engine), append, metrics)
            await asyncio.gather(*(ingestor.poll(f) for f in settings.ingest.feeds))
    finally:
        engine.dispose()
    failed = [f.name for f in settings.ingest.feeds if ingestor.states[f.name].failures]
    summary = f"wrote {written} new entries from {len(settings.ingest.feeds)} feeds to {output}"
    return summary + (f" (failed: {', '.join(failed)}; see the log)" if failed else "")


async def _sweep(seen: SeenIds, settings: Settings, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        cutoff = datetime.now(UTC) - settings.ingest.seen_horizon
        forgotten = await loop.run_in_executor(None, seen.forget, cutoff)
        if forgotten:
            log.info("forgot %d seen ids older than %s", forgotten, cutoff.isoformat())
        await asyncio.sleep(3600)
