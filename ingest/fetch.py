"""HTTP for feeds (aiohttp): conditional GET, a size cap, bounded redirects, timeouts.

`fetch` returns the body (None on 304 Not Modified) and the validators to send next time,
or raises `FetchError` with a short reason label and, for 429/503, the server's Retry-After.
gzip and deflate are decoded by aiohttp; the cap applies to the decoded body, which is read
in chunks and abandoned as soon as it passes the cap, so a gzip bomb cannot fill memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import aiohttp


@dataclass(frozen=True, slots=True)
class Validators:
    """ETag and Last-Modified of the last 200 response, sent back as If-None-Match and
    If-Modified-Since."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes | None
    """None: 304 Not Modified."""
    content_type: str
    validators: Validators


class FetchError(Exception):
    def __init__(self, reason: str, detail: str = "", retry_after: timedelta | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.retry_after = retry_after


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    validators: Validators,
    *,
    max_bytes: int,
    timeout: timedelta,
    max_redirects: int,
) -> Fetched:
    headers = {"Accept": _ACCEPT}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    seconds = timeout.total_seconds()
    try:
        async with session.get(
            url,
            headers=headers,
            # aiohttp stops at the max_redirects-th redirect; ours is the number followed.
            max_redirects=max_redirects + 1,
            allow_redirects=max_redirects > 0,
            timeout=aiohttp.ClientTimeout(total=seconds, sock_connect=seconds),
        ) as response:
            if response.status == 304:
                return Fetched(None, "", validators)
            if response.status in (429, 503):
                raise FetchError(
                    f"http_{response.status}", retry_after=retry_after(response.headers)
                )
            if 300 <= response.status < 400:
                raise FetchError("too_many_redirects", f"stopped at {response.status}")
            if response.status != 200:
                raise FetchError(f"http_{response.status}")
            declared = response.content_length
            if (
                declared is not None
                and declared > max_bytes
                and not response.headers.get("Content-Encoding")
            ):
                raise FetchError("too_large", f"{declared} bytes declared")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError("too_large", f"over {max_bytes} bytes")
            return Fetched(
                bytes(body),
                response.headers.get("Content-Type", ""),
                Validators(response.headers.get("ETag"), response.headers.get("Last-Modified")),
            )
    except aiohttp.TooManyRedirects as exc:
        raise FetchError("too_many_redirects", str(exc)[:200]) from None
    except TimeoutError:
        raise FetchError("timeout", f"after {seconds:g}s") from None
    except aiohttp.ClientPayloadError as exc:
        raise FetchError("bad_payload", str(exc)[:200]) from None
    except aiohttp.ClientError as exc:
        raise FetchError("connection", f"{type(exc).__name__}: {exc}"[:200]) from None


_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9,"
    " application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)


def retry_after(headers: object, now: datetime | None = None) -> timedelta | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    value = getattr(headers, "get", lambda _k: None)("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - (now or datetime.now(UTC)))
