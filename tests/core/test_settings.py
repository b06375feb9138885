"""Settings: the shipped config validates, unknown keys fail, the environment overrides."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.logging_setup import RedactSecrets
from monitor.resources import DEFAULT_ARTIFACT_NAME, bundled_artifact
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


def _config(folder: Path, batch_size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(f"[batching]\nmax_batch_size = {batch_size}\n")
    return path


@pytest.mark.parametrize(
    ("explicit", "env", "in_cwd", "expected"),
    [
        (True, True, True, 11),  # -c wins
        (False, True, True, 22),  # then $FINMON_CONFIG
        (False, False, True, 33),  # then ./config.toml
        (False, False, False, 128),  # then the built-in defaults
    ],
)
def test_the_config_file_is_c_then_env_then_the_current_directory(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    explicit: bool,
    env: bool,
    in_cwd: bool,
    expected: int,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("FINMON_CONFIG", raising=False)
    if env:
        monkeypatch.setenv("FINMON_CONFIG", str(_config(tmp_path / "env", 22)))
    if in_cwd:
        _config(work, 33)
    path = _config(tmp_path / "explicit", 11) if explicit else None
    assert load_settings(path).batching.max_batch_size == expected


def test_without_a_config_file_relative_paths_are_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINMON_CONFIG", raising=False)
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path}/var/finmon.sqlite3"
    assert settings.model_path == bundled_artifact(DEFAULT_ARTIFACT_NAME)


def test_model_path_takes_precedence_over_the_bundled_artifact(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[model]\nartifact = "no-such-artifact"\npath = "mine"\n')
    assert load_settings(path).model_path == tmp_path / "mine"


def test_an_unknown_bundled_artifact_is_a_config_error_naming_the_shipped_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[model]\nartifact = "no-such-artifact"\n')
    with pytest.raises(ValidationError, match=DEFAULT_ARTIFACT_NAME):
        load_settings(path)


def test_a_missing_explicit_config_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINMON_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError):
        load_settings()
