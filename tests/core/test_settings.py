"""Settings: the shipped config validates, unknown keys fail, the environment overrides."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.logging_setup import RedactSecrets
from monitor.settings import load_settings
from tests.conftest import REPO

REPO_CONFIG = REPO / "config.toml"


def test_shipped_config_is_valid() -> None:
    settings = load_settings(REPO_CONFIG)
    assert settings.windows.sizes == [
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(hours=1),
    ]
    assert settings.database_url.startswith("sqlite:////")


@pytest.mark.parametrize(
    "body",
    [
        "[kafka]\nbootstrap_server = ['x']\n",
        "[nonsense]\na = 1\n",
        "[windows]\nsizes = ['5 parsecs']\n",
        "[batching]\nmax_batch_size = 0\n",
    ],
)
def test_bad_config_is_an_error(tmp_path: Path, body: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(ValidationError):
        load_settings(path)


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[batching]\nmax_batch_size = 16\n")
    monkeypatch.setenv("FINMON_BATCHING__MAX_BATCH_SIZE", "32")
    monkeypatch.setenv("FINMON_KAFKA__SASL_PASSWORD", "hunter2-secret")
    settings = load_settings(path)
    assert settings.batching.max_batch_size == 32
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" in settings.secret_values()


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.toml")


def test_log_redaction_hides_url_passwords_and_secrets() -> None:
    redact = RedactSecrets(["hunter2-secret"])
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "connect %s with %s",
        ("postgresql://u:pw@h/db", "hunter2-secret"),
        None,
    )
    redact.filter(record)
    assert record.getMessage() == "connect postgresql://u:***@h/db with ***"


@pytest.mark.parametrize(
    ("value", "servers"),
    [("a:1,b:2", ["a:1", "b:2"]), ('["a:1"]', ["a:1"]), ("a:1", ["a:1"])],
)
def test_bootstrap_servers_from_env(
    monkeypatch: pytest.MonkeyPatch, value: str, servers: list[str]
) -> None:
    monkeypatch.setenv("FINMON_KAFKA__BOOTSTRAP_SERVERS", value)
    assert load_settings(REPO_CONFIG).kafka.bootstrap_servers == servers


def test_secrets_named_by_alert_channels_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[alerts.channels.hook]\ntype = "webhook"\n'
        'url = "http://127.0.0.1:1/x"\nsecret_env = "HOOK_SECRET"\n'
    )
    monkeypatch.setenv("HOOK_SECRET", "s3cr3t-hook-value")
    assert "s3cr3t-hook-value" in load_settings(path).secret_values()
