"""The facade on a real database (SQLite, and PostgreSQL when the stack runs), with the news
stored by the real `NewsStore`, a real HTTP receiver and a fake monotonic clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from alerts.channels.webhook import verify_signature
from alerts.lifecycle import Kind
from alerts.models import AlertRow
from alerts.service import AlertService
from finmon.cli.alerts import alerts_command
from monitor.settings import Settings
from tests.alerts.conftest import T0, Feed, WebhookReceiver

SECRET = "hook-secret"
FIVE = timedelta(minutes=5)
CALM = ["neutral", "bullish", "neutral", "bearish", "neutral"]


class Clock:
    """Processing time, moved by the test."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def make_settings(tmp_path: Path, hook_url: str, group_by: list[str] | None = None) -> Settings:
    return Settings(
        config_dir=tmp_path,
        windows={"sizes": ["1m", "5m"]},
        alerts={
            "allowed_lateness": "1m",
            "reopen_within": "15m",
            "notify_max_age": "1h",
            "rules": [
                {
                    "name": "ticker-spike",
                    "dimension": "ticker",
                    "window": "5m",
                    "min_volume": 5,
                    "min_bearish": 3,
                    "min_share_increase": 0.3,
                }
            ],
            "channels": {"hook": {"type": "webhook", "url": hook_url, "timeout": "2s"}},
            "routes": [
                {
                    "channels": ["hook"],
                    "group_by": group_by or [],
                    "group_wait": "30s",
                    "group_interval": "5m",
                }
            ],
        },
    )


class Desk:
    """A stream stored batch by batch, the service driven as the worker's timers drive it."""

    def __init__(self, engine: Engine, service: AlertService, clock: Clock) -> None:
        self.feed, self.service, self.clock = Feed(engine), service, clock

    def store(self, at: datetime, sentiments: list[str], tickers: tuple[str, ...], now: datetime):
        stored = self.feed.add(at, sentiments, tickers=tickers)
        self.service.note_stored(stored.windows.keys(), {0: at})
        self.clock.seconds += 2
        events = self.service.evaluate_due(now) + self.service.sweep(now)
        self.service.deliver_pending(now)
        return events


@pytest.fixture
def desk(
    engine: Engine,
    tmp_path: Path,
    webhook: WebhookReceiver,
    monkeypatch: Any,
    request: pytest.FixtureRequest,
) -> Desk:
    monkeypatch.setenv("FINMON_WEBHOOK_SECRET", SECRET)
    clock = Clock()
    group_by = getattr(request, "param", None)
    service = AlertService.from_settings(
        make_settings(tmp_path, webhook.url, group_by),
        engine,
        monotonic=clock,
        wall=lambda: T0 + timedelta(seconds=clock.seconds),
    )
    return Desk(engine, service, clock)


def count(engine: Engine, **where: Any) -> int:
    table = AlertRow.__table__
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def live_hour_with_two_bursts(desk: Desk, late: bool = False) -> list[Any]:
    """An hour of calm news on ACME and BETA, then a burst on both in one window, then calm;
    each batch is stored 30 s after its items were published (a live stream)."""
    events = []
    for i in range(24):
        at = T0 + i * FIVE
        burst = i in (12, 13)
        for ticker in ("ACME", "BETA"):
            sentiments = ["bearish"] * 8 if burst else CALM
            events += desk.store(at, sentiments, (ticker,), at + timedelta(seconds=30))
        if late and i == 20:  # a late item for the burst window: no second incident
            events += desk.store(T0 + 12 * FIVE, ["bearish"], ("ACME",), at)
    return events


def test_a_burst_on_two_keys_is_one_incident_each_and_one_message(
    engine: Engine, desk: Desk, webhook: WebhookReceiver
) -> None:
    events = live_hour_with_two_bursts(desk, late=True)
    fired = [(e.kind, e.key) for e in events if e.kind is Kind.FIRING]
    assert sorted(fired) == [(Kind.FIRING, "ACME"), (Kind.FIRING, "BETA")]
    assert count(engine) == 2 and count(engine, state="resolved") == 2
    # the firing pair waited group_wait together and went out as one message
    firing = webhook.requests[0]
    header = firing.headers["X-Finmon-Signature"]
    assert verify_signature(SECRET.encode(), firing.body, header)
    doc = firing.json()
    assert doc["schema"] == "finmon.alert-group/v2" and doc["kind"] == "firing"
    assert sorted(a["key"] for a in doc["alerts"]) == ["ACME", "BETA"]
    [acme] = [a for a in doc["alerts"] if a["key"] == "ACME"]
    assert acme["window"]["start"] == (T0 + 12 * FIVE).isoformat()
    assert acme["detected_at"] > acme["window"]["end"]
    desk.service.deliver_pending_until_idle(T0 + timedelta(hours=3))
    kinds = [r.json()["kind"] for r in webhook.requests]
    assert kinds == ["firing", "resolved"]  # two messages for two incidents


def test_history_is_stored_not_delivered(
    engine: Engine, desk: Desk, webhook: WebhookReceiver
) -> None:
    """The same stream replayed a day later: incidents stored with the reason, no message."""
    for i in range(24):
        at = T0 + i * FIVE
        sentiments = ["bearish"] * 8 if i == 12 else CALM
        desk.store(at, sentiments, ("ACME",), T0 + timedelta(days=1))
    desk.service.finish_input()
    desk.service.evaluate_pending(T0 + timedelta(days=1))
    desk.service.sweep(T0 + timedelta(days=1))
    assert desk.service.deliver_pending_until_idle(T0 + timedelta(days=1)) == 0
    assert webhook.requests == []
    with engine.connect() as conn:
        [reason] = conn.scalars(select(AlertRow.__table__.c.suppressed_reason)).all()
    assert reason.startswith("history:")


def test_the_cli_shows_episode_and_detection_time(
    engine: Engine, desk: Desk, tmp_path: Path, monkeypatch: Any
) -> None:
    live_hour_with_two_bursts(desk)
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("FINMON_DATABASE__URL", url)
    result = CliRunner().invoke(alerts_command, ["--since", T0.isoformat()])
    assert result.exit_code == 0, result.output
    assert "episode, event time (UTC)" in result.output and "detected (UTC)" in result.output
    assert "2026-01-05 10:00 to 10:10" in result.output


@pytest.mark.parametrize("desk", [["key"]], indirect=True)
def test_group_by_key_sends_one_message_per_key(
    engine: Engine, desk: Desk, webhook: WebhookReceiver
) -> None:
    live_hour_with_two_bursts(desk)
    desk.service.deliver_pending_until_idle(T0 + timedelta(hours=3))
    groups = [(r.json()["kind"], r.json()["group"]["labels"]["key"]) for r in webhook.requests]
    assert sorted(groups) == [
        ("firing", "ACME"),
        ("firing", "BETA"),
        ("resolved", "ACME"),
        ("resolved", "BETA"),
    ]
