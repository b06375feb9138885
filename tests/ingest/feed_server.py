"""A real HTTP server on 127.0.0.1 serving feed fixtures and hostile responses."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<rss version="2.0"><channel><title>bomb</title>
<item><guid>x</guid><title>&d;</title></item></channel></rss>"""


ARTICLE = (
    b"<html><head><title>Acme</title></head><body><nav><a href='/'>Home</a> "
    b"<a href='/m'>Markets</a></nav><main><article><h1>Acme recalls cars</h1>"
    + b"".join(
        b"<p>Acme Motors said on Tuesday it would recall two million cars over a brake fault "
        b"found in testing, paragraph %d.</p>" % i
        for i in range(6)
    )
    + b"<script>track()</script></article></main><footer>Copyright 2026</footer></body></html>"
)


@dataclass
class FeedServer:
    """Routes: /rss /atom /json (ETag + Last-Modified, 304), /status/{code}, /slow,
    /redirect/{n}, /malformed, /huge, /gzip-bomb, /bomb, /html, /not-utf8, /mutable."""

    url: str = ""
    requests: list[web.Request] = field(default_factory=list)
    mutable_body: bytes = b""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/rss", self._fixture("rss.xml", "application/rss+xml"))
        app.router.add_get("/atom", self._fixture("atom.xml", "application/atom+xml"))
        app.router.add_get("/json", self._fixture("feed.json", "application/feed+json"))
        app.router.add_get("/status/{code}", self._status)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/redirect/{n}", self._redirect)
        app.router.add_get("/malformed", self._bytes(b"<rss version='2.0'><channel><item><title>x"))
        app.router.add_get("/huge", self._huge)
        app.router.add_get("/gzip-bomb", self._gzip_bomb)
        app.router.add_get("/bomb", self._bytes(BILLION_LAUGHS))
        app.router.add_get("/html", self._bytes(b"<html><body><p>Not a feed</p></body></html>"))
        app.router.add_get(
            "/not-utf8",
            self._bytes(
                b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                b"<item><guid>u</guid><title>Caf\xe9 \xff\xfe</title></item></channel></rss>"
            ),
        )
        app.router.add_get("/mutable", self._mutable)
        app.router.add_get("/articles-feed", self._articles_feed)
        app.router.add_get("/article/good", self._bytes(ARTICLE, "text/html"))
        app.router.add_get(
            "/article/empty", self._bytes(b"<html><body></body></html>", "text/html")
        )
        app.router.add_get("/article/missing", self._status)
        return app

    async def _articles_feed(self, _: web.Request) -> web.Response:
        items = "".join(
            f"<item><guid>a-{kind}</guid><title>Story {kind}</title>"
            f"<link>{self.url}/article/{kind}</link><description>summary {kind}</description>"
            "<pubDate>Tue, 01 Dec 2026 09:00:00 GMT</pubDate></item>"
            for kind in ("good", "empty", "missing", "slow-page")
        )
        body = f'<rss version="2.0"><channel><title>a</title>{items}</channel></rss>'
        return web.Response(body=body.encode(), content_type="application/rss+xml")

    @web.middleware
    async def _record(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return await handler(request)

    def _fixture(self, name: str, content_type: str):  # type: ignore[no-untyped-def]
        body = (FIXTURES / name).read_bytes()
        return self._validated(lambda: body, content_type)

    def _validated(self, body_of, content_type: str):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            body = body_of()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            headers = {"ETag": etag, "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"}
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers=headers)
            return web.Response(body=body, content_type=content_type, headers=headers)

        return handler

    async def _mutable(self, request: web.Request) -> web.Response:
        return await self._validated(lambda: self.mutable_body, "application/rss+xml")(request)

    @staticmethod
    def _bytes(body: bytes, content_type: str = "application/xml"):  # type: ignore[no-untyped-def]
        async def handler(_: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type)

        return handler

    @staticmethod
    async def _status(request: web.Request) -> web.Response:
        code = int(request.match_info.get("code", "404"))
        headers = {"Retry-After": "120"} if code in (429, 503) else {}
        return web.Response(status=code, text="no", headers=headers)

    @staticmethod
    async def _slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    @staticmethod
    async def _redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound("/rss" if n <= 1 else f"/redirect/{n - 1}")

    @staticmethod
    async def _huge(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"<rss>" + b" " * (3 * 1024 * 1024), content_type="text/xml")

    @staticmethod
    async def _gzip_bomb(_: web.Request) -> web.Response:
        body = gzip.compress(b"\0" * (64 * 1024 * 1024))
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})


@asynccontextmanager
async def feed_server() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()
