"""The email channel against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.channels import DeliveryError, build_channels
from alerts.channels.email import EmailChannel
from alerts.lifecycle import Kind
from alerts.rules import AlertSettings
from tests.alerts.conftest import TlsFiles, free_port, notification

PASSWORD = "smtp-pass-from-env"


@dataclass
class Mailbox:
    """Collects messages; answers DATA with the scripted replies first, then 250."""

    replies: list[str] = field(default_factory=list)
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=data.password == PASSWORD.encode(), handled=False)


StartServer = Callable[..., Mailbox]


@pytest.fixture
def smtp_server(tls_files: TlsFiles) -> Iterator[StartServer]:
    controllers: list[Controller] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.cert, tls_files.key)

    def start(security: str = "none") -> Mailbox:
        box = Mailbox(port=free_port())
        kwargs: dict[str, Any] = {"authenticator": box.authenticate}
        if security == "starttls":
            kwargs |= {"tls_context": context, "require_starttls": True}
        else:  # implicit TLS is TLS from the start, but aiosmtpd cannot tell
            kwargs |= {"auth_require_tls": False}
        if security == "ssl":
            kwargs |= {"ssl_context": context}
        controller = Controller(box, hostname="127.0.0.1", port=box.port, **kwargs)
        controller.start()
        controllers.append(controller)
        return box

    yield start
    for controller in controllers:
        controller.stop()


def email_channel(box: Mailbox, tls_files: TlsFiles, **overrides: Any) -> EmailChannel:
    fields = {
        "type": "email",
        "host": "127.0.0.1",
        "port": box.port,
        "security": "none",
        "from_addr": "finmon@example.test",
        "to_addrs": ["desk@example.test", "risk@example.test"],
        "timeout": "5s",
        "ca_file": str(tls_files.cert),
    }
    settings = AlertSettings.model_validate(
        {"channels": {"mail": fields | overrides}, "routes": [{"channels": ["mail"]}]}
    )
    channels = build_channels(settings, lambda p: p, environ={"FINMON_SMTP_PASSWORD": PASSWORD})
    mail = channels["mail"]
    assert isinstance(mail, EmailChannel)
    return mail


def test_subject_and_body_describe_the_alert(smtp_server: StartServer, tls_files: TlsFiles) -> None:
    box = smtp_server("none")
    email_channel(box, tls_files).send(notification(key="idem-42"))
    [msg] = box.messages
    assert msg["Subject"] == (
        "[finmon] FIRING [warning] ticker ACME: 75% bearish (6/8) in 5m vs 19% baseline"
    )
    assert msg["From"] == "finmon@example.test"
    assert msg["Message-ID"] == "<idem-42@finmon>"
    assert box.recipients == [["desk@example.test", "risk@example.test"]]
    body = msg.get_content()
    assert "Negative share: 75.0% (baseline 19.0% over 12 windows)" in body
    assert "[bearish -0.93] ACME plunges after profit warning <https://news.example/1>" in body
    assert "Rule:           ticker-negative-spike (ticker ACME)" in body


def test_a_group_email_lists_every_alert_with_its_times(
    smtp_server: StartServer, tls_files: TlsFiles
) -> None:
    note = notification()
    ticker = note.payload["alerts"][0]
    market = {**ticker, "dimension": "all", "key": "*", "severity": "critical"}
    market["summary"] = "market: 40% bearish (24/60) in 5m vs 15% baseline"
    payload = {
        **note.payload,
        "alerts": [ticker, market],
        "summary": f"{ticker['summary']} (+1 more)",
    }
    box = smtp_server("none")
    email_channel(box, tls_files).send(replace(note, payload=payload))
    [msg] = box.messages
    assert msg["Subject"].startswith("[finmon] FIRING [critical] ticker ACME")
    assert msg["Subject"].endswith("(+1 more)")
    body = msg.get_content()
    assert "2 alerts in this group (all alerts), firing" in body
    assert "- FIRING [warning] ticker ACME" in body and "- FIRING [critical] market" in body
    assert body.count("Episode (event time): 2026-01-05T09:00:00+00:00 to") == 2
    assert "Detected:       2026-01-05T09:07:00+00:00" in body


def test_resolved_email(smtp_server: StartServer, tls_files: TlsFiles) -> None:
    box = smtp_server("none")
    email_channel(box, tls_files).send(notification(Kind.RESOLVED))
    [msg] = box.messages
    assert msg["Subject"].startswith("[finmon] RESOLVED [warning] ticker ACME")
    assert "Resolved:" in msg.get_content()


def test_starttls_with_login(smtp_server: StartServer, tls_files: TlsFiles) -> None:
    box = smtp_server("starttls")
    mail = email_channel(
        box,
        tls_files,
        security="starttls",
        username="finmon",
        password_env="FINMON_SMTP_PASSWORD",
    )
    mail.send(notification())
    assert box.logins == [(b"finmon", PASSWORD.encode())]
    assert len(box.messages) == 1
    assert PASSWORD not in repr(mail.__dict__)


def test_implicit_tls_with_login(smtp_server: StartServer, tls_files: TlsFiles) -> None:
    box = smtp_server("ssl")
    email_channel(
        box, tls_files, security="ssl", username="finmon", password_env="FINMON_SMTP_PASSWORD"
    ).send(notification())
    assert len(box.messages) == 1


def test_a_wrong_password_is_final(
    smtp_server: StartServer, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = smtp_server("starttls")
    mail = email_channel(
        box, tls_files, security="starttls", username="finmon", password_env="FINMON_SMTP_PASSWORD"
    )
    monkeypatch.setattr(mail, "_password", type(mail._password)("wrong"))
    with pytest.raises(DeliveryError, match="535") as failure:
        mail.send(notification())
    assert not failure.value.retryable and box.messages == []


def test_an_untrusted_certificate_is_final(smtp_server: StartServer, tls_files: TlsFiles) -> None:
    box = smtp_server("starttls")
    mail = email_channel(box, tls_files, security="starttls")
    mail._context = ssl.create_default_context()  # the system CAs do not know the test cert
    with pytest.raises(DeliveryError) as failure:
        mail.send(notification())
    assert not failure.value.retryable


@pytest.mark.parametrize(
    ("reply", "retryable"), [("451 try again later", True), ("554 rejected as spam", False)]
)
def test_smtp_replies_decide_retries(
    smtp_server: StartServer, tls_files: TlsFiles, reply: str, retryable: bool
) -> None:
    box = smtp_server("none")
    box.replies = [reply]
    with pytest.raises(DeliveryError, match=reply.split()[0]) as failure:
        email_channel(box, tls_files).send(notification())
    assert failure.value.retryable is retryable


def test_an_unreachable_server_is_retryable(tls_files: TlsFiles) -> None:
    box = Mailbox(port=free_port())
    with pytest.raises(DeliveryError) as failure:
        email_channel(box, tls_files, timeout=timedelta(seconds=1)).send(notification())
    assert failure.value.retryable
