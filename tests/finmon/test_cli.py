"""The `finmon` command: every command is registered and its help loads (its module imports)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from finmon.cli import main

COMMANDS = [
    "alerts",
    "classify",
    "db",
    "evaluate",
    "ingest",
    "produce",
    "recalibrate",
    "refit-heads",
    "replay",
    "sample",
    "soup",
    "train",
    "trends",
    "worker",
]


def test_every_command_is_registered() -> None:
    assert sorted(main.commands) == COMMANDS


@pytest.mark.parametrize("command", [*COMMANDS, "db upgrade"])
def test_each_command_has_help(command: str) -> None:
    result = CliRunner().invoke(main, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_a_bad_config_exits_2_with_one_message() -> None:
    result = CliRunner().invoke(main, ["db", "upgrade", "-c", "/nonexistent/finmon.toml"])
    assert result.exit_code == 2
    assert "invalid configuration: config file not found" in result.output
