"""Feed bodies to entries: RSS 2.0 and Atom by feedparser, JSON Feed by hand.

XML is first checked by defusedxml, which refuses any entity declaration: feedparser's own
parser would expand internal entities (the "billion laughs" bomb). A body that is neither a
feed nor parseable raises `FeedError` with a short reason, which becomes a metrics label.
"""

from __future__ import annotations

import calendar
import json
from datetime import UTC, datetime
from typing import Any

import feedparser
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as safe_fromstring

from ingest.mapping import Entry


class FeedError(Exception):
    """A feed body that yields no entries; `reason` is a short label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def parse_feed(body: bytes, content_type: str = "") -> list[Entry]:
    """The entries of a feed body, in feed order."""
    head = body.lstrip()[:1]
    if "json" in content_type.lower() or head in (b"{", b"["):
        return _json_feed(body)
    return _xml_feed(body)


def _xml_feed(body: bytes) -> list[Entry]:
    try:
        safe_fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise FeedError("xml_entities", type(exc).__name__) from None
    except ParseError as exc:
        raise FeedError("malformed_xml", str(exc)[:200]) from None
    parsed = feedparser.parse(body, sanitize_html=True, resolve_relative_uris=False)
    if parsed.get("bozo") and not parsed.entries:
        raise FeedError("malformed_xml", str(parsed.get("bozo_exception"))[:200])
    if not parsed.get("version"):
        raise FeedError("not_a_feed", "neither RSS nor Atom")
    lang = parsed.feed.get("language")
    return [_xml_entry(e, lang) for e in parsed.entries]


def _xml_entry(e: Any, lang: str | None) -> Entry:
    summary = e.get("summary")
    if e.get("content"):
        summary = e["content"][0].get("value") or summary
    stamp = e.get("published_parsed") or e.get("updated_parsed")
    published = datetime.fromtimestamp(calendar.timegm(stamp), UTC) if stamp else None
    return Entry(
        guid=e.get("id"),
        link=e.get("link"),
        title=e.get("title"),
        summary=summary,
        published=published,
        lang=lang,
    )


def _json_feed(body: bytes) -> list[Entry]:
    """JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FeedError("malformed_json", str(exc)[:200]) from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        raise FeedError("not_a_feed", "not a JSON Feed document")
    items = doc.get("items")
    if not isinstance(items, list):
        raise FeedError("not_a_feed", "JSON Feed without items")
    lang = _str(doc.get("language"))
    return [_json_entry(i, lang) for i in items if isinstance(i, dict)]


def _json_entry(item: dict[str, Any], lang: str | None) -> Entry:
    return Entry(
        guid=_str(item.get("id")) if not isinstance(item.get("id"), bool) else None,
        link=_str(item.get("url")),
        title=_str(item.get("title")),
        summary=_str(item.get("summary"))
        or _str(item.get("content_text"))
        or _str(item.get("content_html")),
        published=_iso(item.get("date_published")) or _iso(item.get("date_modified")),
        lang=_str(item.get("language")) or lang,
    )


def _str(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # JSON Feed ids are strings, but numbers are common
    return None


def _iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
