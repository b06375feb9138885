"""SMTP email over STARTTLS or implicit TLS (or plain, without login), via stdlib smtplib.

SMTP's own codes say what is worth retrying: 4xx replies are transient, 5xx permanent.
Connection problems and timeouts are retried; a certificate the client cannot verify is a
configuration problem and is not.
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from pydantic import SecretStr

from alerts.channels.base import DeliveryError, Notification
from alerts.rules import SEVERITY_RANK, EmailChannelSettings


def render_email(
    notification: Notification, *, from_addr: str, to_addrs: list[str], subject_prefix: str
) -> EmailMessage:
    """A plain-text email of one group message; its Message-ID is the idempotency key, so
    mail systems can drop a resend too."""
    doc = notification.payload
    alerts = doc["alerts"]
    top = max(alerts, key=lambda a: SEVERITY_RANK[a["severity"]])
    msg = EmailMessage()
    msg["Subject"] = (
        f"{subject_prefix} {doc['kind'].upper()} [{top['severity']}] {doc['summary']}"
    ).strip()
    msg["From"] = from_addr
    msg["To"] = ", ".join(to_addrs)
    msg["Date"] = format_datetime(datetime.fromisoformat(doc["created_at"]))
    msg["Message-ID"] = f"<{notification.idempotency_key}@finmon>"
    msg["X-Finmon-Idempotency-Key"] = notification.idempotency_key
    msg["X-Finmon-Group"] = doc["group"]["key"]
    msg.set_content(_body(doc))
    return msg


def _body(doc: dict[str, Any]) -> str:
    alerts = doc["alerts"]
    labels = ", ".join(f"{k}={v}" for k, v in doc["group"]["labels"].items()) or "all alerts"
    lines = [
        f"finmon: {len(alerts)} alert{'s' if len(alerts) != 1 else ''} in this group "
        f"({labels}), {doc['kind']}",
        "",
    ]
    lines += [f"- {a['kind'].upper()} [{a['severity']}] {a['summary']}" for a in alerts]
    for alert in alerts:
        lines += ["", "-" * 72, *_alert_lines(alert)]
    return "\n".join(lines) + "\n"


def _alert_lines(alert: dict[str, Any]) -> list[str]:
    figures, window = alert["figures"], alert["window"]
    lines = [
        f"{alert['kind'].upper()} ({alert['severity']}): {alert['summary']}",
        f"Reason:         {alert['reason']}",
        f"Rule:           {alert['rule']} ({alert['dimension']} {alert['key']})",
        f"Episode (event time): {window['start']} to {window['end']}",
        f"Peak window:    {figures['window_start']} to {figures['window_end']}",
        f"Items:          {figures['n_total']} ({figures['n_bearish']} bearish, "
        f"{figures['n_neutral']} neutral, {figures['n_bullish']} bullish)",
        f"Negative share: {figures['negative_share']:.1%} "
        f"(baseline {figures['baseline_share']:.1%} over {figures['baseline_windows']} windows)",
        f"Score:          {figures['score']:.2f} "
        f"(z share {figures['z_share']:.2f}, z count {figures['z_count']:.2f})",
        f"Detected:       {alert['detected_at']}",
    ]
    if alert["resolved_at"]:
        lines.append(f"Resolved:       {alert['resolved_at']}")
    if alert["headlines"]:
        lines += ["", "Most bearish headlines:"]
        lines += [
            f"- [{h['sentiment']} {h['sentiment_score']:+.2f}] {h['headline']}"
            + (f" <{h['url']}>" if h["url"] else "")
            for h in alert["headlines"]
        ]
    lines.append(f"Fingerprint: {alert['fingerprint']}")
    return lines


class EmailChannel:
    def __init__(
        self, settings: EmailChannelSettings, password: SecretStr | None, context: ssl.SSLContext
    ) -> None:
        self.settings = settings
        self._password = password
        self._context = context

    def send(self, notification: Notification) -> None:
        s = self.settings
        msg = render_email(
            notification,
            from_addr=s.from_addr,
            to_addrs=s.to_addrs,
            subject_prefix=s.subject_prefix,
        )
        try:
            with self._connect() as smtp:
                smtp.send_message(msg, from_addr=s.from_addr, to_addrs=s.to_addrs)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            retryable = any(400 <= code < 500 for code in codes)
            raise DeliveryError(f"SMTP recipients refused: {codes}", retryable=retryable) from exc
        except smtplib.SMTPResponseException as exc:
            code, error = exc.smtp_code, _text(exc.smtp_error)
            raise DeliveryError(f"SMTP {code} {error}", retryable=400 <= code < 500) from exc
        except (smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError) as exc:
            raise DeliveryError(f"SMTP setup: {exc}", retryable=False) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP connection: {exc!r}", retryable=True) from exc

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        timeout = s.timeout.total_seconds()
        if s.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.effective_port, timeout=timeout, context=self._context
            )
        else:
            smtp = smtplib.SMTP(s.host, s.effective_port, timeout=timeout)
        try:
            if s.security == "starttls":
                smtp.starttls(context=self._context)
            if s.username is not None and self._password is not None:
                smtp.login(s.username, self._password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
