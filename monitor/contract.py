"""The input message contract: raw bytes in, a valid `NewsItem` or a `Rejection` out.

Pure and total: `decode_news` never raises for any input bytes, so one bad message can
never stop a worker; every rejection carries the raw bytes and a precise reason, ready for
the dead-letter topic.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_KNOWN_FIELDS = frozenset(
    {
        "id",
        "published_at",
        "headline",
        "title",
        "body",
        "source",
        "url",
        "tickers",
        "entities",
        "lang",
    }
)
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,9}(?:[.\-][A-Za-z]{1,3})?)(?![\w])")
_LAST_WORD = re.compile(r"\S+\Z")
_MAX_ID_CHARS = 256
_MAX_TICKER_CHARS = 16
_MAX_SHORT_FIELD_CHARS = 2048
_MAX_ENTITY_NAME_CHARS = 256


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    """Limits applied while decoding (see `IngestSettings` for what each one is for)."""

    max_headline_chars: int = 1000
    max_body_chars: int = 20_000
    max_message_bytes: int = 8 * 1024 * 1024
    max_future_skew: timedelta = timedelta(minutes=10)
    max_age: timedelta = timedelta(days=365)
    max_tickers: int = 100
    """Distinct tickers one item may name (its `tickers` plus its cashtags). Each ticker
    costs a row and one window row per size; a message over the limit is dead-lettered, not
    cut, so no ticker's trend ever counts an item it was arbitrarily kept or dropped from."""


@dataclass(frozen=True, slots=True)
class NewsItem:
    """A validated news item, normalised for storage and classification."""

    id: str
    published_at: datetime
    headline: str
    body: str | None = None
    source: str | None = None
    url: str | None = None
    tickers: tuple[str, ...] = ()
    lang: str | None = None
    entities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Ticker → the names the text may call it by (every key is also in `tickers`)."""
    extra: dict[str, Any] = field(default_factory=dict)
    body_truncated: bool = False
    content_hash: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused, with the exact bytes that were received."""

    reason: str
    raw: bytes


class _Invalid(Exception):
    """Internal: raised inside the decoder, always turned into a Rejection."""


def decode_news(
    raw: bytes, *, now: datetime, policy: IngestPolicy | None = None
) -> NewsItem | Rejection:
    """Decode and validate one message. Never raises (for any bytes)."""
    policy = policy or IngestPolicy()
    try:
        return _decode(raw, now=now, policy=policy)
    except _Invalid as exc:
        return Rejection(reason=str(exc), raw=raw)
    except Exception as exc:  # a decoder bug must still not lose the message
        return Rejection(reason=f"internal decoder error: {type(exc).__name__}: {exc}", raw=raw)


def _decode(raw: bytes, *, now: datetime, policy: IngestPolicy) -> NewsItem:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise _Invalid(f"message value is {type(raw).__name__}, not bytes")
    raw = bytes(raw)
    if len(raw) > policy.max_message_bytes:
        raise _Invalid(f"message is {len(raw)} bytes, over the {policy.max_message_bytes} limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Invalid(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        doc = json.loads(text, parse_constant=_non_finite, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _Invalid("invalid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise _Invalid(f"JSON value is {_json_type(doc)}, not an object")

    item_id = _required_str(doc, "id")
    if len(item_id) > _MAX_ID_CHARS:
        raise _Invalid(f"field 'id' is longer than {_MAX_ID_CHARS} characters")
    if not _storable(item_id):  # the id is the idempotency key: never altered, so refused
        raise _Invalid("field 'id' contains a NUL character or a lone surrogate")
    published_at = _timestamp(doc, now=now, policy=policy)
    headline_key = "headline" if "headline" in doc else "title"
    headline = _clean(_required_str(doc, headline_key))
    if not headline.strip():
        raise _Invalid(f"field '{headline_key}' is empty or whitespace")
    headline = headline.strip()[: policy.max_headline_chars]
    body = _optional_str(doc, "body")
    body_truncated = body is not None and len(body) > policy.max_body_chars
    if body is not None:
        body = _clean(body)[: policy.max_body_chars] or None
    # A cut at max_body_chars can leave half a cashtag (`$ACME` -> `$AC`): not a ticker.
    found = _tickers(
        doc, headline, _drop_last_word(body) if body_truncated else body, policy.max_tickers
    )
    entities = _entities(doc)
    for ticker in entities:  # an entity's ticker is one the item names too
        _add_ticker(found, ticker, policy.max_tickers)
    tickers = tuple(found)
    extra = {k: v for k, v in doc.items() if k not in _KNOWN_FIELDS}
    return NewsItem(
        id=item_id,
        published_at=published_at,
        headline=headline,
        body=body,
        source=_short(doc, "source"),
        url=_short(doc, "url"),
        tickers=tickers,
        lang=_short(doc, "lang"),
        entities=entities,
        extra=_strip_nul_deep(extra),
        body_truncated=body_truncated,
        content_hash=hashlib.sha256(raw).hexdigest(),
    )


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _required_str(doc: dict[str, Any], key: str) -> str:
    if key not in doc or doc[key] is None:
        wanted = "'headline' (or 'title')" if key in ("headline", "title") else f"'{key}'"
        raise _Invalid(f"missing required field {wanted}")
    value = doc[key]
    if not isinstance(value, str):
        raise _Invalid(f"field '{key}' must be a string, got {_json_type(value)}")
    if key == "id" and not value.strip():
        raise _Invalid("field 'id' is empty")
    return value


def _optional_str(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"field '{key}' must be a string, got {_json_type(value)}")
    return value


def _short(doc: dict[str, Any], key: str) -> str | None:
    value = _optional_str(doc, key)
    if value is None:
        return None
    return _clean(value).strip()[:_MAX_SHORT_FIELD_CHARS] or None


def _non_finite(name: str) -> float:
    raise _Invalid(f"invalid JSON: {name} is not a JSON number")


def _finite_float(literal: str) -> float:
    """JSON numbers must fit a double: `1e400` would be stored as Infinity, which PostgreSQL's
    json type refuses, and a batch that can never be stored would be retried forever."""
    value = float(literal)
    if not math.isfinite(value):
        raise _Invalid(f"invalid JSON: number {literal[:32]} is out of range")
    return value


def _storable(text: str) -> bool:
    """Whether PostgreSQL text can hold `text` (no NUL, no lone surrogate) as it is."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean(text: str) -> str:
    """Drop NUL characters (PostgreSQL text cannot hold them) and lone surrogates."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _drop_last_word(text: str | None) -> str | None:
    return _LAST_WORD.sub("", text) if text else text


def _strip_nul_deep(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {_clean(str(k)): _strip_nul_deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul_deep(v) for v in value]
    return value


def _timestamp(doc: dict[str, Any], *, now: datetime, policy: IngestPolicy) -> datetime:
    text = _required_str(doc, "published_at")
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise _Invalid(
            f"field 'published_at' is not an ISO 8601 timestamp: {text[:64]!r}"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _Invalid(f"field 'published_at' has no timezone: {text[:64]!r}")
    parsed = parsed.astimezone(UTC)
    if parsed > now + policy.max_future_skew:
        raise _Invalid(
            f"field 'published_at' {parsed.isoformat()} is more than "
            f"{policy.max_future_skew} in the future"
        )
    if parsed < now - policy.max_age:
        raise _Invalid(
            f"field 'published_at' {parsed.isoformat()} is older than the {policy.max_age} limit"
        )
    return parsed


def _tickers(
    doc: dict[str, Any], headline: str, body: str | None, max_tickers: int
) -> dict[str, None]:
    """The item's distinct tickers, in order: the given ones (validated), then the
    headline's and the body's cashtags. Counting stops at the first ticker over
    `max_tickers`, so a message with millions of them costs no more than the limit to
    refuse."""
    given = doc.get("tickers")
    if given is None:
        given = []
    if not isinstance(given, list) or not all(isinstance(t, str) for t in given):
        raise _Invalid("field 'tickers' must be a list of strings")
    found: dict[str, None] = {}
    for raw_ticker in given:
        _add_ticker(found, _ticker(raw_ticker, "tickers"), max_tickers)
    for text in (headline, body or ""):
        for ticker in extract_cashtags(text):
            _add_ticker(found, ticker, max_tickers)
    return found


def _add_ticker(found: dict[str, None], ticker: str, max_tickers: int) -> None:
    found[ticker] = None
    if len(found) > max_tickers:
        raise _Invalid(
            f"item names more than {max_tickers} distinct tickers ('tickers', 'entities' and"
            " cashtags), over the ingest.max_tickers limit"
        )


def _ticker(raw: str, field_name: str) -> str:
    ticker = raw.strip().lstrip("$").upper()
    if not ticker or len(ticker) > _MAX_TICKER_CHARS or not _storable(ticker):
        raise _Invalid(f"field '{field_name}' holds an invalid ticker: {ticker[:32]!r}")
    return ticker


def _entities(doc: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """`entities`: an object from ticker to the list of names the text may use for it
    (e.g. {"BA": ["Boeing"]}); names are stripped, empty ones dropped, order kept."""
    given = doc.get("entities")
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise _Invalid(f"field 'entities' must be an object, got {_json_type(given)}")
    entities: dict[str, tuple[str, ...]] = {}
    for raw_ticker, names in given.items():
        ticker = _ticker(raw_ticker, "entities")
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _Invalid(f"field 'entities' must map each ticker to a list of names ({ticker})")
        cleaned = [_clean(n).strip()[:_MAX_ENTITY_NAME_CHARS] for n in names]
        entities[ticker] = (*entities.get(ticker, ()), *(n for n in cleaned if n))
    return {ticker: tuple(dict.fromkeys(names)) for ticker, names in entities.items()}


def extract_cashtags(text: str) -> list[str]:
    """Cashtags such as `$AAPL` or `$BRK.B`, upper-cased; `$5` or `$5bn` are not tickers."""
    return [match.upper() for match in _CASHTAG.findall(text)]
