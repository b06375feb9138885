"""`finmon ingest`: one asyncio task per feed, an idempotent Kafka producer, /health and
/metrics.

Each feed polls on its own timer, so a slow, failing or hostile feed only ever delays
itself: every error of a poll is caught, logged, counted in
`finmon_ingest_errors_total{feed,reason}` and answered by that feed's backoff. A poll
publishes its new entries (key = id, acks = all, idempotent producer), waits for the broker
to acknowledge them, and only then records their ids as seen: a crash in between republishes
them once, and the worker's dedup by id drops the copies.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from ingest.article import ArticleError, article_text
from ingest.backoff import next_delay
from ingest.fetch import FetchError, Validators, fetch
from ingest.mapping import FeedContext, Skipped, to_message
from ingest.parse import FeedError, parse_feed
from ingest.seen import SeenIds
from monitor.settings import FeedSettings, Settings

log = logging.getLogger(__name__)
_JITTER = random.Random()

Publish = Callable[[list[tuple[str, bytes]]], Awaitable[None]]
"""Sends (key, value) messages and returns once the broker acknowledged every one."""


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.errors = Counter(
            "finmon_ingest_errors_total",
            "Feed polls or entries that failed, by feed and reason.",
            ["feed", "reason"],
            registry=self.registry,
        )
        self.published = Counter(
            "finmon_ingest_published_total",
            "Entries published to the input topic.",
            ["feed"],
            registry=self.registry,
        )
        self.polls = Counter(
            "finmon_ingest_polls_total",
            "Feed polls by outcome (ok, not_modified, error).",
            ["feed", "outcome"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "finmon_ingest_last_success_timestamp_seconds",
            "When a feed was last polled successfully (Unix time).",
            ["feed"],
            registry=self.registry,
        )


@dataclass(slots=True)
class FeedState:
    validators: Validators = field(default_factory=Validators)
    failures: int = 0


class Ingestor:
    """Polls feeds and publishes their new entries; `poll` is one poll of one feed."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        seen: SeenIds,
        publish: Publish,
        metrics: IngestMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.session = session
        self.seen = seen
        self.publish = publish
        self.metrics = metrics or IngestMetrics()
        self.clock = clock
        self.states: dict[str, FeedState] = {f.name: FeedState() for f in settings.ingest.feeds}

    async def poll(self, feed: FeedSettings) -> timedelta:
        """Poll `feed` once; returns the wait before its next poll. Never raises (but for
        cancellation): a failure is logged, counted and backed off."""
        state = self.states.setdefault(feed.name, FeedState())
        ingest = self.settings.ingest
        try:
            published = await self._poll(feed, state)
        except asyncio.CancelledError:
            raise
        except (FetchError, FeedError) as exc:
            return self._failed(feed, state, exc.reason, exc, getattr(exc, "retry_after", None))
        except Exception as exc:  # a bug or a broker/database outage: back off, keep going
            return self._failed(feed, state, type(exc).__name__, exc, None)
        state.failures = 0
        self.metrics.polls.labels(
            feed.name, "ok" if published is not None else "not_modified"
        ).inc()
        self.metrics.last_success.labels(feed.name).set(self.clock().timestamp())
        return next_delay(feed.every, 0, ingest.max_backoff)

    def _failed(
        self,
        feed: FeedSettings,
        state: FeedState,
        reason: str,
        exc: Exception,
        retry_after: timedelta | None,
    ) -> timedelta:
        state.failures += 1
        self.metrics.errors.labels(feed.name, reason).inc()
        self.metrics.polls.labels(feed.name, "error").inc()
        delay = next_delay(
            feed.every, state.failures, self.settings.ingest.max_backoff, retry_after, _JITTER
        )
        log.warning(
            "feed %s failed (%s); next poll in %.0fs", feed.name, exc, delay.total_seconds()
        )
        return delay

    async def _poll(self, feed: FeedSettings, state: FeedState) -> int | None:
        ingest = self.settings.ingest
        fetched = await fetch(
            self.session,
            feed.url,
            state.validators,
            max_bytes=feed.max_bytes,
            timeout=feed.timeout,
            max_redirects=ingest.max_redirects,
        )
        if fetched.body is None:
            return None
        loop = asyncio.get_running_loop()
        entries = await loop.run_in_executor(None, parse_feed, fetched.body, fetched.content_type)
        context = FeedContext(
            feed.name,
            tuple(t.strip().lstrip("$").upper() for t in feed.tickers),
            feed.lang,
            ingest.max_headline_chars,
            ingest.max_body_chars,
            ingest.max_future_skew,
            ingest.max_age,
        )
        now = self.clock()
        messages: dict[str, dict[str, Any]] = {}
        for entry in entries[: feed.max_entries]:
            mapped = to_message(context, entry, now)
            if isinstance(mapped, Skipped):
                self.metrics.errors.labels(feed.name, mapped.reason).inc()
                continue
            messages.setdefault(mapped["id"], mapped)
        new = await loop.run_in_executor(None, self.seen.unseen, feed.name, list(messages))
        if new and feed.article_text:
            await self._add_articles(feed, [messages[i] for i in new])
        if new:
            await self.publish([(i, orjson.dumps(messages[i])) for i in new])
            await loop.run_in_executor(None, self.seen.mark, feed.name, new, now)
            self.metrics.published.labels(feed.name).inc(len(new))
        state.validators = fetched.validators  # only once the entries are safely out
        return len(new)

    async def _add_articles(self, feed: FeedSettings, messages: list[dict[str, Any]]) -> None:
        """Replace the body of up to `article_max_per_poll` messages by their page's text."""
        linked = [m for m in messages if m.get("url", "").startswith(("http://", "https://"))]
        limit = self.settings.ingest.max_body_chars

        async def one(message: dict[str, Any]) -> None:
            try:
                text = await article_text(
                    self.session,
                    message["url"],
                    max_bytes=feed.article_max_bytes,
                    timeout=feed.article_timeout,
                    max_redirects=self.settings.ingest.max_redirects,
                )
            except ArticleError as exc:
                self.metrics.errors.labels(feed.name, exc.reason).inc()
                return
            message["body"] = text[:limit]
            message["body_from"] = "article"

        await asyncio.gather(*(one(m) for m in linked[: feed.article_max_per_poll]))

    async def run_feed(self, feed: FeedSettings) -> None:
        """Poll `feed` forever, each poll after the delay the previous one chose."""
        while True:
            delay = await self.poll(feed)
            await asyncio.sleep(delay.total_seconds())


def web_app(metrics: IngestMetrics) -> web.Application:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def exposition(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", exposition)
    return app
