"""The `[alerts]` schema: working offline defaults, strict validation, routing."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.channels import build_channels
from alerts.channels.log import LogChannel
from alerts.rules import AlertSettings, RuleSettings
from alerts.service import AlertService
from monitor.settings import Settings
from tests.conftest import REPO

DOC = REPO / "config.toml"


def rule(**overrides: Any) -> dict[str, Any]:
    return {"name": "r", "dimension": "ticker", "window": "5m", **overrides}


def test_defaults_route_every_rule_to_an_offline_log_channel() -> None:
    settings = AlertSettings()
    assert {r.dimension for r in settings.rules} == {"ticker", "topic", "all"}
    assert settings.channels["log"].type == "log"
    for r in settings.rules:
        assert settings.channels_for(r.name, "info") == ["log"]
    channels = build_channels(settings, lambda p: Path("/tmp") / p, environ={})
    assert isinstance(channels["log"], LogChannel)


def test_the_documented_section_is_valid_and_equals_the_defaults() -> None:
    doc = tomllib.loads(DOC.read_text())
    assert AlertSettings.model_validate(doc["alerts"]) == AlertSettings()


def test_service_accepts_defaults_with_default_window_sizes(sqlite_engine: Any) -> None:
    AlertService.from_settings(Settings(), sqlite_engine)


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"bogus": 1}, "Extra inputs are not permitted"),
        ({"rules": [rule(threshold=3)]}, "Extra inputs are not permitted"),
        ({"rules": [rule(dimension="sector")]}, "dimension"),
        ({"rules": [rule(window="1500ms")]}, "whole number of seconds"),
        ({"rules": [rule(), rule()]}, "rule names must be unique"),
        ({"rules": [rule(thresholds={"warning": 5, "critical": 3})]}, "rise strictly"),
        ({"rules": [rule(thresholds={})]}, "at least one severity"),
        ({"rules": [rule(resolve_z=3.0)]}, "resolve_z"),
        ({"rules": [rule(min_volume=0)]}, "min_volume"),
        ({"routes": [{"channels": ["nope"]}]}, "unknown channels"),
        ({"routes": [{"rules": ["nope"], "channels": ["log"]}]}, "unknown rules"),
        ({"channels": {"log": {"type": "pager"}}}, "type"),
        ({"channels": {"l": {"type": "log", "path": None}}, "routes": []}, "path, stdout"),
        (
            {"channels": {"h": {"type": "webhook", "url": "ftp://x"}}, "routes": []},
            "http(s)",
        ),
        (
            {
                "channels": {
                    "m": {
                        "type": "email",
                        "host": "h",
                        "from_addr": "a@x",
                        "to_addrs": ["b@x"],
                        "username": "u",
                        "password_env": "FINMON_SMTP_PASSWORD",
                        "security": "none",
                    }
                },
                "routes": [],
            },
            "unencrypted",
        ),
        (
            {
                "channels": {
                    "m": {
                        "type": "email",
                        "host": "h",
                        "from_addr": "a@x",
                        "to_addrs": ["b@x"],
                        "username": "u",
                        "password_env": "not a var",
                    }
                },
                "routes": [],
            },
            "environment variable name",
        ),
        ({"delivery": {"initial_backoff": "1m", "max_backoff": "10s"}}, "max_backoff"),
    ],
)
def test_invalid_sections_are_rejected(alerts: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertSettings.model_validate(alerts)


def test_rule_window_must_be_a_configured_window_size(sqlite_engine: Any) -> None:
    settings = Settings(alerts={"rules": [rule(window="15m")]})
    with pytest.raises(ValueError, match="not one of"):
        AlertService.from_settings(settings, sqlite_engine)


def test_missing_secret_is_an_error_naming_the_variable() -> None:
    settings = AlertSettings.model_validate(
        {
            "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/x"}},
            "routes": [{"channels": ["hook"]}],
        }
    )
    with pytest.raises(ValueError, match="FINMON_WEBHOOK_SECRET"):
        build_channels(settings, Path, environ={})


def test_routing_by_rule_and_severity() -> None:
    settings = AlertSettings.model_validate(
        {
            "rules": [rule(name="a"), rule(name="b", dimension="all")],
            "channels": {
                "log": {"type": "log"},
                "desk": {"type": "log", "path": "var/desk.log"},
                "pager": {"type": "log", "path": "var/pager.log"},
            },
            "routes": [
                {"channels": ["log"]},
                {"rules": ["a"], "channels": ["desk", "log"]},
                {"rules": ["a", "b"], "channels": ["pager"], "min_severity": "critical"},
            ],
        }
    )
    assert settings.channels_for("a", "warning") == ["log", "desk"]
    assert settings.channels_for("a", "critical") == ["log", "desk", "pager"]
    assert settings.channels_for("b", "warning") == ["log"]
    assert settings.channels_for("b", "critical") == ["log", "pager"]


@pytest.mark.parametrize(
    ("score", "severity"),
    [(0.0, None), (2.99, None), (3.0, "warning"), (4.9, "warning"), (5.0, "critical")],
)
def test_severity_for_score(score: float, severity: str | None) -> None:
    assert RuleSettings.model_validate(rule()).severity_for(score) == severity


def test_quiet_period_defaults_to_one_window() -> None:
    assert RuleSettings.model_validate(rule(window="1h")).quiet_period == timedelta(hours=1)
    custom = RuleSettings.model_validate(rule(resolve_after="10m"))
    assert custom.quiet_period == timedelta(minutes=10)
