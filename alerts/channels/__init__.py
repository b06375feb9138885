"""Notification channels (log, email, webhook) built from `[alerts.channels.<name>]`.

Secrets are read here, from the environment variables the config names, into `SecretStr`;
a missing one stops the start with a message naming the variable, never its value.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import SecretStr

from alerts.channels.base import Channel, DeliveryError, Notification, tls_context
from alerts.channels.email import EmailChannel
from alerts.channels.log import LogChannel
from alerts.channels.webhook import WebhookChannel
from alerts.rules import (
    AlertSettings,
    ChannelSettings,
    EmailChannelSettings,
    LogChannelSettings,
    WebhookChannelSettings,
)

__all__ = ["Channel", "DeliveryError", "Notification", "build_channels"]


def _secret(environ: Mapping[str, str], channel: str, var: str) -> SecretStr:
    value = environ.get(var)
    if not value:
        raise ValueError(f"alert channel {channel!r} needs the environment variable {var}")
    return SecretStr(value)


def build_channel(
    name: str,
    settings: ChannelSettings,
    resolve: Callable[[Path], Path],
    environ: Mapping[str, str],
) -> Channel:
    match settings:
        case LogChannelSettings(path=path, stdout=stdout):
            return LogChannel(resolve(path) if path else None, stdout)
        case EmailChannelSettings(password_env=var, ca_file=ca_file):
            password = _secret(environ, name, var) if var else None
            return EmailChannel(settings, password, _tls(ca_file, resolve))
        case WebhookChannelSettings(secret_env=var, ca_file=ca_file):
            return WebhookChannel(settings, _secret(environ, name, var), _tls(ca_file, resolve))
    raise TypeError(f"unknown channel settings {type(settings).__name__}")


def _tls(ca_file: Path | None, resolve: Callable[[Path], Path]) -> ssl.SSLContext:
    return tls_context(resolve(ca_file) if ca_file else None)


def build_channels(
    settings: AlertSettings, resolve: Callable[[Path], Path], environ: Mapping[str, str]
) -> dict[str, Channel]:
    """Every configured channel by name; `resolve` anchors relative paths at the config."""
    return {
        name: build_channel(name, channel, resolve, environ)
        for name, channel in settings.channels.items()
    }
