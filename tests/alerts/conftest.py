"""Real local receivers for the alert channels (SMTP, HTTP on 127.0.0.1) and feed helpers."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from alerts.channels import Notification
from alerts.detection import Figures
from alerts.lifecycle import Incident, Kind
from alerts.outbox import StoredAlert
from alerts.payload import alert_document, figures_document, message_document
from monitor.contract import NewsItem
from monitor.db.store import NewsStore, StoreResult
from monitor.model.interface import Classification
from monitor.pipeline_types import ClassifiedItem
from monitor.windows import WindowKey

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
SCORES = {"bearish": -0.9, "neutral": 0.0, "bullish": 0.8}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- news feed -------------------------------------------------------------------------


class Feed:
    """Stores classified items through the real `NewsStore`, with made-up ids."""

    def __init__(self, engine: Engine) -> None:
        self.store = NewsStore(engine, [dt.timedelta(minutes=1), dt.timedelta(minutes=5)])
        self.count = 0

    def item(
        self,
        at: dt.datetime,
        sentiment: str,
        *,
        tickers: Sequence[str] = ("ACME",),
        topic: str = "Stock Movement",
        score: float | None = None,
    ) -> ClassifiedItem:
        self.count += 1
        score = SCORES[sentiment] if score is None else score
        news = NewsItem(
            id=f"n{self.count}",
            published_at=at,
            headline=f"{sentiment} headline {self.count}",
            tickers=tuple(tickers),
            url=f"https://news.example/{self.count}",
            content_hash=f"h{self.count}",
        )
        verdict = Classification(topic, 0.9, sentiment, score, {sentiment: 0.9}, "test-1")
        return ClassifiedItem(news, verdict)

    def add(self, at: dt.datetime, sentiments: Sequence[str], **kw: Any) -> StoreResult:
        """Store one item per sentiment, published at `at`."""
        return self.store.store([self.item(at, s, **kw) for s in sentiments], now=at)


def notification(kind: Kind = Kind.FIRING, key: str = "idem-1") -> Notification:
    """A realistic notification document (one group of one alert), as the service renders it."""
    window = WindowKey(300, T0, "ticker", "ACME")
    figures = Figures(8, 6, 2, 0, -0.7, 0.75, 12, 60, 0.19, 1.0, 4.2, 5.0, 4.2)
    resolved = T0 + dt.timedelta(minutes=40) if kind is Kind.RESOLVED else None
    alert = StoredAlert(
        id=7,
        fingerprint="f" * 32,
        rule="ticker-negative-spike",
        dimension="ticker",
        key="ACME",
        window_seconds=300,
        incident=Incident(
            T0,
            window.window_end,
            "warning",
            "warning",
            T0 + dt.timedelta(minutes=7),
            T0,
            resolved_at=resolved,
        ),
        figures=figures_document(window, figures, "share"),
        notifications=1,
        revision=0,
    )
    headline = {
        "id": "n1",
        "headline": "ACME plunges after profit warning",
        "published_at": T0.isoformat(),
        "source": "wire",
        "url": "https://news.example/1",
        "sentiment": "bearish",
        "sentiment_score": -0.93,
    }
    reason = "negative share 75% against a baseline of 19% (score 4.2)"
    document = message_document(
        kind=kind,
        alerts=[alert_document(alert, str(kind), reason, [headline])],
        group_key="g" * 40,
        labels={},
        route=0,
        channel="test",
        idempotency_key=key,
        now=T0 + dt.timedelta(minutes=8),
    )
    return Notification(key, str(kind), document)


# --- HTTP receiver -----------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A scripted HTTP receiver: answers each POST with the next status (200 when the script
    is used up); a status of 0 means 'hang past the client's timeout, then hang up'."""

    url: str
    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    hang_seconds: float = 1.0


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append(Received(dict(self.headers.items()), body))
            status = receiver.script.pop(0) if receiver.script else 200
            if status == 0:
                time.sleep(receiver.hang_seconds)
                return  # the client gave up long ago: hang up without an answer
            payload = b'{"error": "scripted"}' if status >= 300 else b"{}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/finmon")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


# --- TLS -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1, used as its own CA by the clients."""
    pytest.importorskip("cryptography", reason="cryptography makes the test certificate")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    files = TlsFiles(folder / "cert.pem", folder / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
