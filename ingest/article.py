"""Optional article text: the main text of an entry's linked page (trafilatura).

Off by default (`[[ingest.feeds]] article_text`). Bounded per feed: at most
`article_max_per_poll` pages a poll, each read up to `article_max_bytes` within
`article_timeout`, through the feed fetcher (same redirects bound and User-Agent). A page that
fails is counted (`article_<reason>`) and its entry keeps the feed's summary: article text
improves an item, it never holds one back.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp

from ingest.fetch import FetchError, Validators, fetch
from ingest.mapping import plain_text


class ArticleError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def article_text(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    timeout: timedelta,
    max_redirects: int,
) -> str:
    """The page's main text, plain; raises `ArticleError` with a reason label."""
    try:
        page = await fetch(
            session,
            url,
            Validators(),
            max_bytes=max_bytes,
            timeout=timeout,
            max_redirects=max_redirects,
        )
    except FetchError as exc:
        raise ArticleError(f"article_{exc.reason}") from None
    if not page.body:
        raise ArticleError("article_empty")
    loop = asyncio.get_running_loop()
    text = await loop.run_in_executor(None, extract, page.body)
    if not text:
        raise ArticleError("article_no_text")
    return text


def extract(html: bytes) -> str:
    """Main text of an HTML page, without navigation, comments and boilerplate."""
    import trafilatura

    found = trafilatura.extract(html, fast=True, include_comments=False, include_tables=False)
    return plain_text(found or "")
