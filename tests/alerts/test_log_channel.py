"""The default, offline channel: JSON lines to a file and/or stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerts.channels import DeliveryError
from alerts.channels.log import LogChannel
from tests.alerts.conftest import notification


def test_appends_one_json_line_per_notification(tmp_path: Path) -> None:
    path = tmp_path / "var" / "alerts.log"
    channel = LogChannel(path, stdout=False)
    channel.send(notification(key="a"))
    channel.send(notification(key="b"))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["idempotency_key"] for line in lines] == ["a", "b"]
    assert lines[0]["summary"].startswith("ticker ACME: 75% bearish")


def test_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    LogChannel(None, stdout=True).send(notification())
    assert json.loads(capsys.readouterr().out)["kind"] == "firing"


def test_an_unwritable_file_is_retryable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(DeliveryError) as failure:
        LogChannel(blocker / "alerts.log", stdout=False).send(notification())
    assert failure.value.retryable
