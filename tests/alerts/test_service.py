"""The facade on a real database (SQLite, and PostgreSQL when the stack runs), with the news
stored by the real `NewsStore`, a log file and a real HTTP receiver."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from alerts import outbox
from alerts.channels.webhook import verify_signature
from alerts.cli import alerts_command
from alerts.lifecycle import Kind
from alerts.models import AlertDeliveryRow, AlertRow
from alerts.service import AlertService
from monitor.settings import Settings
from tests.alerts.conftest import T0, Feed, WebhookReceiver

SECRET = "hook-secret"
FIVE = timedelta(minutes=5)


def make_settings(
    tmp_path: Path, hook_url: str, repeat_interval: str = "1h", **delivery: Any
) -> Settings:
    return Settings(
        config_dir=tmp_path,
        windows={"sizes": ["1m", "5m"]},
        alerts={
            "rules": [
                {
                    "name": "ticker-spike",
                    "dimension": "ticker",
                    "window": "5m",
                    "min_volume": 5,
                    "min_bearish": 3,
                    "min_share_increase": 0.3,
                    "repeat_interval": repeat_interval,
                }
            ],
            "channels": {
                "log": {"type": "log", "path": "var/alerts.log"},
                "hook": {"type": "webhook", "url": hook_url, "timeout": "2s"},
            },
            "routes": [{"channels": ["log", "hook"]}],
            "delivery": {"initial_backoff": "5s", "max_backoff": "1m", **delivery},
        },
    )


@pytest.fixture
def service_factory(
    engine: Engine, tmp_path: Path, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setenv("FINMON_WEBHOOK_SECRET", SECRET)

    def build(**options: Any) -> AlertService:
        return AlertService.from_settings(make_settings(tmp_path, webhook.url, **options), engine)

    return build


def calm_hour(feed: Feed, service: AlertService, start: datetime) -> list[Any]:
    """12 five-minute windows of ACME news, one bearish item in five."""
    events = []
    for i in range(12):
        at = start + i * FIVE
        stored = feed.add(at, ["neutral", "bullish", "neutral", "bearish", "neutral"])
        events += service.evaluate(stored.windows.keys(), at + timedelta(minutes=4))
    return events


def burst(feed: Feed, service: AlertService, at: datetime) -> list[Any]:
    events = []
    for minute in range(4):  # 4 batches of 8 bearish items inside one window, all critical
        now = at + timedelta(minutes=minute)
        stored = feed.add(now, ["bearish"] * 8, score=-0.5 - minute / 10)
        events += service.evaluate(stored.windows.keys(), now)
    return events


def count(engine: Engine, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def test_a_burst_fires_once_is_delivered_and_resolves(
    engine: Engine, service_factory: Any, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    service, feed = service_factory(), Feed(engine)
    assert calm_hour(feed, service, T0) == []
    burst_at = T0 + 12 * FIVE

    events = burst(feed, service, burst_at)
    assert [(e.kind, e.key, e.channels) for e in events] == [(Kind.FIRING, "ACME", ("log", "hook"))]
    assert count(engine, AlertRow.__table__, state="firing") == 1

    stats = service.deliver_pending(burst_at + timedelta(minutes=4))
    assert (stats.sent, stats.failed, stats.retried) == (2, 0, 0)
    [request] = webhook.requests
    assert verify_signature(SECRET.encode(), request.body, request.headers["X-Finmon-Signature"])
    doc = request.json()
    assert doc["kind"] == "firing" and doc["alert"]["dimension"] == "ticker"
    assert doc["figures"]["window_start"] == burst_at.isoformat()
    assert doc["figures"]["baseline_windows"] == 12
    headlines = doc["headlines"]
    assert len(headlines) == 3
    assert [h["sentiment_score"] for h in headlines] == sorted(
        h["sentiment_score"] for h in headlines
    )
    assert all(h["sentiment"] == "bearish" for h in headlines)
    [line] = (tmp_path / "var" / "alerts.log").read_text().splitlines()
    assert json.loads(line)["alert"]["fingerprint"] == doc["alert"]["fingerprint"]

    # the next window is calm: nothing while it is open, resolved by the sweep afterwards
    calm_at = burst_at + FIVE
    stored = feed.add(calm_at, ["neutral", "bullish", "neutral", "neutral", "neutral"])
    assert service.evaluate(stored.windows.keys(), calm_at + timedelta(minutes=1)) == []
    assert service.sweep(calm_at + timedelta(minutes=4)) == []
    [resolved] = service.sweep(calm_at + FIVE)
    assert resolved.kind is Kind.RESOLVED
    service.deliver_pending(calm_at + FIVE)
    assert [r.json()["kind"] for r in webhook.requests] == ["firing", "resolved"]
    resolved_doc = webhook.requests[1].json()
    assert resolved_doc["alert"]["state"] == "resolved"
    peak = resolved_doc["figures"]  # the whole burst window, not the calm one after it
    assert (peak["window_start"], peak["n_bearish"]) == (burst_at.isoformat(), 32)
    assert count(engine, AlertRow.__table__, state="resolved") == 1
    assert count(engine, AlertDeliveryRow.__table__, status="sent") == 4


def test_a_quiet_ticker_with_one_bearish_item_never_fires(
    engine: Engine, service_factory: Any
) -> None:
    service, feed = service_factory(), Feed(engine)
    for i in range(6):
        at = T0 + i * FIVE
        stored = feed.add(at, ["bearish"], tickers=("QUIET",))
        assert service.evaluate(stored.windows.keys(), at) == []
    assert service.sweep(T0 + timedelta(hours=2)) == []


def test_retries_after_500s_then_delivers_once(
    engine: Engine, service_factory: Any, webhook: WebhookReceiver
) -> None:
    service, feed = service_factory(), Feed(engine)
    calm_hour(feed, service, T0)
    burst(feed, service, T0 + 12 * FIVE)
    webhook.script = [500, 500, 500]
    now = T0 + 13 * FIVE
    retried = 0
    for seconds in (0, 5, 15, 35, 75):
        stats = service.deliver_pending(now + timedelta(seconds=seconds))
        retried += stats.retried
    assert retried == 3
    assert len(webhook.requests) == 4
    assert len({r.headers["Idempotency-Key"] for r in webhook.requests}) == 1
    with engine.connect() as conn:
        row = conn.execute(
            select(AlertDeliveryRow.__table__).where(AlertDeliveryRow.channel == "hook")
        ).one()
    assert (row.status, row.attempts) == ("sent", 4)


def test_a_400_is_recorded_and_not_retried(
    engine: Engine, service_factory: Any, webhook: WebhookReceiver
) -> None:
    service, feed = service_factory(), Feed(engine)
    calm_hour(feed, service, T0)
    burst(feed, service, T0 + 12 * FIVE)
    webhook.script = [400]
    now = T0 + 13 * FIVE
    assert service.deliver_pending(now).failed == 1
    assert not service.deliver_pending(now + timedelta(hours=1))
    assert len(webhook.requests) == 1
    with engine.connect() as conn:
        row = conn.execute(
            select(AlertDeliveryRow.__table__).where(AlertDeliveryRow.channel == "hook")
        ).one()
    assert row.status == "failed" and "HTTP 400" in row.last_error


def test_a_restart_between_stored_and_sent_delivers_exactly_once(
    engine: Engine, service_factory: Any, webhook: WebhookReceiver
) -> None:
    before_restart, feed = service_factory(), Feed(engine)
    calm_hour(feed, before_restart, T0)
    assert burst(feed, before_restart, T0 + 12 * FIVE)
    del before_restart  # the worker stops after the outbox commit, before sending

    after_restart = service_factory()
    now = T0 + 13 * FIVE
    assert after_restart.deliver_pending(now).sent == 2
    for minutes in (1, 10, 60):
        assert not after_restart.deliver_pending(now + timedelta(minutes=minutes))
    assert not service_factory().deliver_pending(now + timedelta(days=1))
    assert len(webhook.requests) == 1


def test_replay_delivers_until_idle(
    engine: Engine, service_factory: Any, webhook: WebhookReceiver
) -> None:
    service, feed = service_factory(), Feed(engine)
    calm_hour(feed, service, T0)
    burst(feed, service, T0 + 12 * FIVE)
    webhook.script = [500]  # retried later, not waited for
    assert service.deliver_pending_until_idle(T0 + 13 * FIVE) == 1
    assert service.deliver_pending_until_idle(T0 + 14 * FIVE) == 1
    assert service.deliver_pending_until_idle(T0 + 15 * FIVE) == 0


def test_a_crash_after_the_receiver_accepted_resends_with_the_same_key(
    engine: Engine,
    service_factory: Any,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At-least-once: the only duplicate possible carries the idempotency key seen before."""
    service, feed = service_factory(claim_timeout="1m"), Feed(engine)
    calm_hour(feed, service, T0)
    burst(feed, service, T0 + 12 * FIVE)
    now = T0 + 13 * FIVE

    real_mark_sent = outbox.mark_sent

    def mark_sent(conn: Any, delivery_id: int, at: datetime) -> None:
        if (
            conn.scalar(select(AlertDeliveryRow.channel).where(AlertDeliveryRow.id == delivery_id))
            == "hook"
        ):
            raise ConnectionError("worker killed")  # after the receiver accepted
        real_mark_sent(conn, delivery_id, at)

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "mark_sent", mark_sent)
        with pytest.raises(ConnectionError):
            service.deliver_pending(now)
    assert len(webhook.requests) == 1
    restarted = service_factory(claim_timeout="1m")
    assert not restarted.deliver_pending(now + timedelta(seconds=30))  # still claimed
    assert restarted.deliver_pending(now + timedelta(minutes=1)).sent == 1
    assert not restarted.deliver_pending(now + timedelta(hours=1))
    first, resent = webhook.requests
    assert first.headers["Idempotency-Key"] == resent.headers["Idempotency-Key"]
    assert first.body == resent.body


def test_repeats_only_after_the_repeat_interval_or_a_severity_rise(
    engine: Engine, service_factory: Any
) -> None:
    service, feed = service_factory(repeat_interval="30m"), Feed(engine)
    calm_hour(feed, service, T0)
    at = T0 + 12 * FIVE
    stored = feed.add(at, ["bearish"] * 4 + ["neutral"])
    [first] = service.evaluate(stored.windows.keys(), at)
    assert (first.kind, first.severity) == (Kind.FIRING, "warning")
    stored = feed.add(at + timedelta(minutes=1), ["bearish"] * 6)
    [rise] = service.evaluate(stored.windows.keys(), at + timedelta(minutes=1))
    assert (rise.kind, rise.severity) == (Kind.REPEAT, "critical")
    assert rise.reason == "severity rose from warning to critical"
    # a sustained, growing spike: deduplicated until the repeat interval is over
    events = []
    for i in range(1, 9):
        now = at + i * FIVE + timedelta(minutes=1)
        stored = feed.add(now, ["bearish"] * (10 + 3 * i))
        events += service.evaluate(stored.windows.keys(), now) + service.sweep(now)
    assert [(e.kind, e.reason) for e in events] == [
        (Kind.REPEAT, "still firing after the repeat interval of 30m")
    ]


def test_a_concurrent_worker_opening_the_same_alert_is_retried_not_duplicated(
    engine: Engine, service_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, feed = service_factory(), service_factory(), Feed(engine)
    calm_hour(feed, first, T0)
    at = T0 + 12 * FIVE
    stored = feed.add(at, ["bearish"] * 6)
    assert len(first.evaluate(stored.windows.keys(), at)) == 1

    real = outbox.firing_alerts
    reads: list[Any] = []

    def stale_first_read(conn: Any, fingerprints: Any = None) -> Any:
        """The second worker read before the first one committed."""
        reads.append(fingerprints)
        return {} if len(reads) == 1 else real(conn, fingerprints)

    monkeypatch.setattr(outbox, "firing_alerts", stale_first_read)
    assert second.evaluate(stored.windows.keys(), at) == []
    assert len(reads) == 2  # the unique index refused the duplicate; evaluated again
    assert count(engine, AlertRow.__table__) == 1


def test_evaluate_reads_nothing_when_no_rule_matches(
    engine: Engine, service_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, feed = service_factory(), Feed(engine)
    stored = feed.add(T0, ["bearish"] * 10, tickers=())  # no ticker: only all/topic windows
    monkeypatch.setattr(service, "engine", None)  # any query would fail
    assert service.evaluate(stored.windows.keys(), T0) == []


def test_cli_lists_alerts_with_their_delivery_status(
    engine: Engine, service_factory: Any, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the CLI reads the configured database; exercised on SQLite")
    service, feed = service_factory(), Feed(engine)
    calm_hour(feed, service, T0)
    burst(feed, service, T0 + 12 * FIVE)
    webhook.script = [503]
    service.deliver_pending(T0 + 13 * FIVE)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{engine.url.render_as_string(hide_password=False)}"\n')
    runner = CliRunner()
    result = runner.invoke(alerts_command, ["-c", str(config), "--since", T0.isoformat()])
    assert result.exit_code == 0, result.output
    assert "ticker:ACME" in result.output and "firing" in result.output
    assert "firing>log:sent" in result.output and "firing>hook:pending x1" in result.output
    assert "HTTP 503" in result.output
    resolved = runner.invoke(
        alerts_command, ["-c", str(config), "--since", T0.isoformat(), "--state", "resolved"]
    )
    assert "no resolved alerts since" in resolved.output
    bad = runner.invoke(alerts_command, ["-c", str(config), "--since", "yesterday"])
    assert bad.exit_code == 2 and "neither a duration" in bad.output


def test_stored_windows_are_judged_by_the_timer_at_most_once_per_interval(
    engine: Engine, tmp_path: Path, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINMON_WEBHOOK_SECRET", SECRET)
    clock = [100.0]
    service = AlertService.from_settings(make_settings(tmp_path, webhook.url), engine)
    paced = AlertService(service.settings, engine, {}, monotonic=lambda: clock[0])
    feed = Feed(engine)
    assert calm_hour(feed, service, T0) == []
    burst_at = T0 + 12 * FIVE

    paced.note_stored(feed.add(burst_at, ["bearish"] * 8, score=-0.6).windows.keys())
    assert paced.windows_pending > 0  # noting never evaluates: the batch does not wait
    [fired] = paced.evaluate_due(burst_at + timedelta(minutes=1))
    assert fired.kind is Kind.FIRING and paced.windows_pending == 0
    clock[0] += 0.3
    quiet = feed.add(burst_at + timedelta(minutes=6), ["neutral"] * 5)  # the next window
    paced.note_stored(quiet.windows.keys())
    assert paced.evaluate_due() == [] and paced.windows_pending > 0  # not due yet
    clock[0] += 0.8
    paced.evaluate_due()  # due: the quiet window is judged now
    assert paced.windows_pending == 0
    with engine.connect() as conn:
        alert = conn.execute(select(AlertRow.__table__)).one()
    assert alert.state == "resolved"  # the quiet window was judged (long closed: resolves)
