"""`finmon ingest` against a real HTTP server on 127.0.0.1: formats, HTTP, hostile feeds.

Messages are collected where the producer would send them and checked with the worker's own
decoder (`monitor.contract.decode_news`), so "maps to the contract" means the worker takes
them. Kafka itself is in tests/e2e/test_ingest_e2e.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import Engine

from ingest.daemon import IngestMetrics, Ingestor
from ingest.seen import SeenIds
from monitor.contract import IngestPolicy, NewsItem, decode_news
from monitor.settings import FeedSettings, Settings
from tests.ingest.feed_server import FIXTURES, FeedServer, feed_server

NOW = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
UA = "finmon-ingest/test (+https://example.invalid)"


class Collector:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def __call__(self, messages: list[tuple[str, bytes]]) -> None:
        self.sent.extend(messages)

    def items(self) -> list[NewsItem]:
        decoded = [decode_news(v, now=NOW, policy=IngestPolicy()) for _, v in self.sent]
        assert all(isinstance(d, NewsItem) for d in decoded), decoded
        return decoded  # type: ignore[return-value]


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with feed_server() as running:
        yield running


def feed(server: FeedServer, path: str, **options: object) -> FeedSettings:
    name = options.pop("name", path.strip("/").replace("/", "-") or "root")
    return FeedSettings(name=name, url=server.url + path, every="1m", **options)  # type: ignore[arg-type]


def ingestor(
    sqlite_engine: Engine, session: aiohttp.ClientSession, *feeds: FeedSettings, **ingest: object
) -> tuple[Ingestor, Collector]:
    settings = Settings(ingest={"feeds": list(feeds), "user_agent": UA, **ingest})
    collector = Collector()
    metrics = IngestMetrics()
    return Ingestor(
        settings, session, SeenIds(sqlite_engine), collector, metrics, lambda: NOW
    ), collector


def errors(ing: Ingestor, name: str, reason: str) -> float:
    return ing.metrics.errors.labels(name, reason)._value.get()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"User-Agent": UA}) as client:
        yield client


async def test_rss_entries_map_to_the_contract(server, sqlite_engine, session) -> None:
    rss = feed(server, "/rss", tickers=["acme", "$MEGA"], lang="en")
    ing, sent = ingestor(sqlite_engine, session, rss)
    delay = await ing.poll(rss)
    assert delay == timedelta(minutes=1)
    items = {i.headline: i for i in sent.items()}
    assert set(items) == {
        "Acme recalls 2 million cars over brake fault",
        "Globex & Initech agree merger",
        "Entry without guid, link or date: Hooli shares slip",
        "Dated in 1970",
        "Dated in the future",
    }
    recall = items["Acme recalls 2 million cars over brake fault"]
    assert recall.published_at == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert recall.body == "Acme Motors ($ACME) said on Tuesday it would recall 2 million cars."
    assert recall.tickers == ("ACME", "MEGA")
    assert recall.url == "http://127.0.0.1/acme-recall" and recall.source == "rss"
    assert recall.lang == "en" and recall.id.startswith("rss:")
    assert "published_at_from" not in recall.extra
    for headline in ("Entry without guid, link or date: Hooli shares slip", "Dated in 1970"):
        assert items[headline].published_at == NOW
    assert items["Dated in 1970"].extra["published_at_from"] == "first_seen_implausible_date"
    assert items["Dated in the future"].extra["published_at_from"] == "first_seen_future_date"
    assert errors(ing, "rss", "no_title") == 1
    assert server.requests[-1].headers["User-Agent"] == UA


async def test_atom_and_json_feed(server, sqlite_engine, session) -> None:
    atom, jsonfeed = feed(server, "/atom"), feed(server, "/json")
    ing, sent = ingestor(sqlite_engine, session, atom, jsonfeed)
    await ing.poll(atom)
    await ing.poll(jsonfeed)
    items = {i.headline: i for i in sent.items()}
    acme = items["Acme recalls 2 million cars over brake fault - Atom Daily"]
    assert acme.published_at == datetime(2026, 12, 1, 8, 40, tzinfo=UTC)
    assert acme.body == "Brake fault."
    assert items["Stark Labs shares jump on $BA contract"].body == "Contract news here."
    assert items["Stark Labs shares jump on $BA contract"].tickers == ("BA",)
    assert items["Umbrella Corp raises outlook"].body == "Raised again."
    assert items["Acme recalls 2 million cars over brake fault | JSON News"].published_at == (
        datetime(2026, 12, 1, 8, 35, tzinfo=UTC)
    )
    assert len(items) == 4
    assert errors(ing, "json", "no_title") == 1


async def test_conditional_get_answers_304_and_publishes_nothing(
    server, sqlite_engine, session
) -> None:
    rss = feed(server, "/rss")
    ing, sent = ingestor(sqlite_engine, session, rss)
    await ing.poll(rss)
    first = len(sent.sent)
    await ing.poll(rss)
    assert server.requests[-1].headers["If-None-Match"].startswith('"')
    assert server.requests[-1].headers["If-Modified-Since"] == "Tue, 01 Dec 2026 10:00:00 GMT"
    assert len(sent.sent) == first
    assert ing.metrics.polls.labels("rss", "not_modified")._value.get() == 1


async def test_a_restart_never_republishes(server, sqlite_engine, session) -> None:
    """A new process (fresh validators, so a full 200) finds the ids in SQL."""
    server.mutable_body = (FIXTURES / "rss.xml").read_bytes()
    mutable = feed(server, "/mutable")
    first, sent_first = ingestor(sqlite_engine, session, mutable)
    await first.poll(mutable)
    assert len(sent_first.sent) == 5
    server.mutable_body += b"<!-- changed -->"
    second, sent_second = ingestor(sqlite_engine, session, mutable)
    await second.poll(mutable)
    assert sent_second.sent == []


@pytest.mark.parametrize(
    ("path", "reason", "options"),
    [
        ("/status/500", "http_500", {}),
        ("/status/404", "http_404", {}),
        ("/slow", "timeout", {"timeout": timedelta(milliseconds=500)}),
        ("/redirect/9", "too_many_redirects", {}),
        ("/malformed", "malformed_xml", {}),
        ("/huge", "too_large", {"max_bytes": 1024 * 1024}),
        ("/gzip-bomb", "too_large", {"max_bytes": 1024 * 1024}),
        ("/bomb", "xml_entities", {}),
        ("/html", "not_a_feed", {}),
        ("/not-utf8", "malformed_xml", {}),
    ],
)
async def test_a_hostile_feed_is_counted_backed_off_and_stops_no_other_feed(
    server, sqlite_engine, session, path: str, reason: str, options: dict[str, object]
) -> None:
    bad, good = feed(server, path, name="bad", **options), feed(server, "/json", name="good")
    ing, sent = ingestor(sqlite_engine, session, bad, good)
    delays = [await ing.poll(bad) for _ in range(3)]
    assert errors(ing, "bad", reason) == 3
    assert all(timedelta(minutes=1) <= d <= timedelta(minutes=8) for d in delays)
    assert sent.sent == []
    await ing.poll(good)
    assert len(sent.items()) == 2


async def test_retry_after_is_honoured(server, sqlite_engine, session) -> None:
    limited = feed(server, "/status/429")
    ing, _ = ingestor(sqlite_engine, session, limited)
    assert await ing.poll(limited) >= timedelta(seconds=120)
    assert errors(ing, "status-429", "http_429") == 1


async def test_redirects_within_the_bound_are_followed(server, sqlite_engine, session) -> None:
    moved, too_far = feed(server, "/redirect/3"), feed(server, "/redirect/4")
    ing, sent = ingestor(sqlite_engine, session, moved, too_far, max_redirects=3)
    await ing.poll(moved)
    assert len(sent.sent) == 5
    await ing.poll(too_far)
    assert errors(ing, "redirect-4", "too_many_redirects") == 1


async def test_a_database_outage_backs_off_and_loses_nothing(server, tmp_path, session) -> None:
    """No schema: the seen-ids lookup fails; nothing is published, the feed backs off, and
    the next poll (validators not advanced) fetches the entries again."""
    from monitor.db.engine import make_engine

    rss = feed(server, "/rss")
    ing, sent = ingestor(make_engine(f"sqlite:///{tmp_path}/empty.sqlite3"), session, rss)
    assert await ing.poll(rss) >= timedelta(minutes=1)
    assert sent.sent == [] and errors(ing, "rss", "OperationalError") == 1
    assert "If-None-Match" not in server.requests[-1].headers


async def test_article_text_replaces_the_summary_and_a_bad_page_keeps_it(
    server, sqlite_engine, session
) -> None:
    articles = feed(
        server,
        "/articles-feed",
        article_text=True,
        article_max_per_poll=3,
        article_timeout=timedelta(seconds=2),
    )
    ing, sent = ingestor(sqlite_engine, session, articles)
    await ing.poll(articles)
    bodies = {i.headline: i for i in sent.items()}
    good = bodies["Story good"]
    assert good.body.startswith("Acme recalls cars Acme Motors said on Tuesday")
    assert "Home" not in good.body and "track()" not in good.body and "Copyright" not in good.body
    assert good.extra["body_from"] == "article"
    assert bodies["Story empty"].body == "summary empty"
    assert bodies["Story missing"].body == "summary missing"
    assert bodies["Story slow-page"].body == "summary slow-page"  # over article_max_per_poll
    assert errors(ing, "articles-feed", "article_no_text") == 1
    assert errors(ing, "articles-feed", "article_http_404") == 1
