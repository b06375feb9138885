"""Feed entries to the input message contract (pure, no I/O).

The id is a stable hash of (feed, entry guid, else link, else title + date), so polling the
same entry again, from this process or after a restart, always gives the same id, and the
worker's dedup by id stays the final guard. Text is made plain: HTML tags are removed (the
content of script and style elements with them) and entities unescaped, so a hostile title
reaches the classifier and analysts as inert text.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from monitor.contract import extract_cashtags

_SPACE = re.compile(r"\s+")
_EPOCH_FLOOR = datetime(1990, 1, 1, tzinfo=UTC)
"""Earlier dates are a feed bug (a zero timestamp reads as 1970), not old news."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One parsed feed entry, every field as the feed gave it (may be missing)."""

    guid: str | None = None
    link: str | None = None
    title: str | None = None
    summary: str | None = None
    published: datetime | None = None
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class FeedContext:
    """What mapping needs from the feed's configuration."""

    name: str
    tickers: tuple[str, ...] = ()
    lang: str | None = None
    max_headline_chars: int = 1000
    max_body_chars: int = 20_000
    max_future_skew: timedelta = timedelta(minutes=10)
    max_age: timedelta = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry that cannot become a message, and why (a metrics reason)."""

    reason: str


def item_id(feed: str, entry: Entry) -> str:
    """`feed:` + a hash of the entry's identity: guid, else link, else title + date."""
    if entry.guid and entry.guid.strip():
        identity = "guid\x1f" + entry.guid.strip()
    elif entry.link and entry.link.strip():
        identity = "link\x1f" + entry.link.strip()
    else:
        date = entry.published.isoformat() if entry.published else ""
        identity = f"title\x1f{plain_text(entry.title or '')}\x1f{date}"
    digest = hashlib.sha256(f"{feed}\x1f{identity}".encode()).hexdigest()[:40]
    return f"{feed}:{digest}"


def to_message(feed: FeedContext, entry: Entry, now: datetime) -> dict[str, Any] | Skipped:
    """The message for `entry` (the input contract of README "Message contract")."""
    headline = plain_text(entry.title or "")[: feed.max_headline_chars]
    if not headline:
        return Skipped("no_title")
    extra: dict[str, Any] = {"feed": feed.name}
    published = entry.published
    if published is not None and published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    if published is None:
        published, extra["published_at_from"] = now, "first_seen"
    elif published > now + feed.max_future_skew:
        published, extra["published_at_from"] = now, "first_seen_future_date"
    elif published < _EPOCH_FLOOR:
        published, extra["published_at_from"] = now, "first_seen_implausible_date"
    elif published < now - feed.max_age:
        return Skipped("too_old")
    body = plain_text(entry.summary or "")[: feed.max_body_chars] or None
    tickers = [*feed.tickers, *extract_cashtags(headline), *extract_cashtags(body or "")]
    message: dict[str, Any] = {
        "id": item_id(feed.name, entry),
        "published_at": published.astimezone(UTC).isoformat(),
        "headline": headline,
        "body": body,
        "url": entry.link.strip() if entry.link else None,
        "source": feed.name,
        "lang": entry.lang or feed.lang,
        "tickers": list(dict.fromkeys(t.upper() for t in tickers)),
        **extra,
    }
    return {k: v for k, v in message.items() if v is not None}


class _TextOnly(HTMLParser):
    """Collects text, dropping tags and whatever script/style elements hold."""

    _SKIP = frozenset({"script", "style", "noscript", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in ("br", "p", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def plain_text(text: str) -> str:
    """`text` without HTML: tags removed, entities unescaped, whitespace collapsed."""
    if "<" in text:
        parser = _TextOnly()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    text = html.unescape(text).replace("\x00", "")
    return _SPACE.sub(" ", text).strip()
