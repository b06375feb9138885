"""The facade the worker and replay call: evaluate, sweep, deliver.

    service = AlertService.from_settings(settings, engine)
    service.note_stored(store_result.windows.keys())    # after each stored batch
    service.evaluate_due()                              # every `evaluate_every`
    service.sweep(now)                                  # every few seconds
    service.deliver_pending(now)                        # every few seconds

`evaluate` and `sweep` run detection and the lifecycle and write alerts with their pending
deliveries in one transaction; `deliver_pending` sends them. All three are synchronous and
take `now`, so replay can run them on event time and tests on a fake clock.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from alerts import lifecycle, outbox
from alerts.channels import Channel, build_channels
from alerts.delivery import DeliveryStats, Dispatcher, RetryPolicy
from alerts.detection import Status, assess, baseline_of, below_minimum
from alerts.lifecycle import Decision, Kind, fingerprint, observe
from alerts.pacing import EvaluationPacer
from alerts.payload import figures_document, notification_document
from alerts.rules import AlertSettings, RuleSettings
from alerts.sources import read_windows, sample_headlines
from monitor.settings import Settings
from monitor.windows import WindowCounts, WindowKey

log = logging.getLogger(__name__)
_CONFLICT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A notification decided by `evaluate` or `sweep` (count them for metrics)."""

    alert_id: int
    fingerprint: str
    rule: str
    dimension: str
    key: str
    kind: Kind
    severity: str
    reason: str
    channels: tuple[str, ...]


class AlertService:
    def __init__(
        self,
        settings: AlertSettings,
        engine: Engine,
        channels: Mapping[str, Channel],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self._pacer: EvaluationPacer[WindowKey] = EvaluationPacer(
            settings.evaluate_every.total_seconds()
        )
        self._monotonic = monotonic
        self._rules = {rule.name: rule for rule in settings.rules}
        self._rules_by_shape: dict[tuple[str, int], list[RuleSettings]] = defaultdict(list)
        for rule in settings.rules:
            self._rules_by_shape[rule.dimension, rule.window_seconds].append(rule)
        self.dispatcher = Dispatcher(
            engine,
            channels,
            RetryPolicy.from_settings(settings.delivery),
            batch_size=settings.delivery.batch_size,
            claim_timeout=settings.delivery.claim_timeout,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, engine: Engine, *, environ: Mapping[str, str] = os.environ
    ) -> AlertService:
        """Validate `[alerts]` against the rest of the settings and build the channels.

        Raises `pydantic.ValidationError` or `ValueError` with a message for the operator."""
        alert_settings = AlertSettings.model_validate(settings.alerts)
        sizes = {int(s.total_seconds()) for s in settings.windows.sizes}
        for rule in alert_settings.rules:
            if rule.window_seconds not in sizes:
                raise ValueError(
                    f"alert rule {rule.name!r} uses a {rule.window} window, which is not one of "
                    f"[windows] sizes: {sorted(sizes)} seconds"
                )
        channels = build_channels(alert_settings, settings.resolve, environ)
        return cls(alert_settings, engine, channels)

    def note_stored(self, touched: Iterable[WindowKey]) -> None:
        """Note the windows a stored batch touched, for the next `evaluate_due`: the batch
        does not wait for the rules (pure, cannot fail)."""
        self._pacer.add(touched)

    @property
    def windows_pending(self) -> int:
        """Windows stored since the last evaluation, waiting for the next one."""
        return self._pacer.pending

    def evaluate_due(self, now: datetime | None = None) -> list[AlertEvent]:
        """Judge the windows noted since the last evaluation, if that is `evaluate_every`
        old (the worker's timer calls this every `evaluate_every`)."""
        return self._evaluate_taken(self._pacer.take_due(self._monotonic()), now)

    def evaluate_pending(self, now: datetime | None = None) -> list[AlertEvent]:
        """Evaluate every pending window now, due or not (end of a replay, shutdown)."""
        return self._evaluate_taken(self._pacer.take_all(self._monotonic()), now)

    def _evaluate_taken(
        self, keys: list[WindowKey], now: datetime | None = None
    ) -> list[AlertEvent]:
        if not keys:
            return []
        try:
            return self.evaluate(keys, now or datetime.now(UTC))
        except Exception:
            self._pacer.give_back(keys)  # judged at the next hand-out instead
            raise

    def evaluate(self, touched: Iterable[WindowKey], now: datetime) -> list[AlertEvent]:
        """Judge the windows a stored batch touched; store what fires or resolves.

        Only windows of a rule's dimension and size are read (one query per rule, with
        their baselines); nothing is read at all when no touched window matches a rule."""
        plan: dict[str, dict[str, set[WindowKey]]] = defaultdict(lambda: defaultdict(set))
        if self.settings.enabled:
            for window in touched:
                for rule in self._rules_by_shape.get((window.dimension, window.window_seconds), ()):
                    plan[rule.name][window.key].add(window)
        if not plan:
            return []
        return self._in_transaction(lambda conn: self._evaluate(conn, plan, now))

    def sweep(self, now: datetime) -> list[AlertEvent]:
        """Resolve firing alerts whose key went quiet: no new window means no `evaluate`."""
        if not self.settings.enabled:
            return []
        return self._in_transaction(lambda conn: self._sweep(conn, now))

    def deliver_pending(self, now: datetime) -> DeliveryStats:
        """Send due deliveries with the retry policy; each is marked sent only once accepted."""
        return self.dispatcher.deliver_pending(now)

    def deliver_pending_until_idle(self, now: datetime | None = None) -> int:
        """Deliver until nothing is due at `now` (default: the current time); the number
        sent. For replay and one-shot runs; failures are retried later, not waited for."""
        now = now or datetime.now(UTC)
        sent = 0
        while stats := self.deliver_pending(now):
            sent += stats.sent
        return sent

    def _in_transaction(self, work: Callable[[Connection], list[AlertEvent]]) -> list[AlertEvent]:
        """Run `work` in one transaction, again if another worker changed the same alerts."""
        attempt = 1
        while True:
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except (outbox.ConcurrentUpdate, IntegrityError):
                if attempt == _CONFLICT_ATTEMPTS:
                    raise
                attempt += 1
                log.info("alerts changed concurrently; evaluating again")

    def _evaluate(
        self, conn: Connection, plan: Mapping[str, Mapping[str, set[WindowKey]]], now: datetime
    ) -> list[AlertEvent]:
        firing = outbox.firing_alerts(
            conn,
            {
                fingerprint(name, self._rules[name].dimension, key)
                for name, keys in plan.items()
                for key in keys
            },
        )
        events: list[AlertEvent] = []
        for name, keys in plan.items():
            rule = self._rules[name]
            starts = [w.window_start for windows in keys.values() for w in windows]
            history = read_windows(
                conn,
                rule.dimension,
                rule.window_seconds,
                keys,
                min(starts) - rule.window * rule.baseline_windows,
                max(starts),
            )
            if rule.count == "stories":
                history = {
                    key: {start: c.stories() for start, c in by_start.items()}
                    for key, by_start in history.items()
                }
            for key, windows in sorted(keys.items()):
                alert = firing.get(fingerprint(rule.name, rule.dimension, key))
                for window in sorted(windows):
                    alert = self._evaluate_window(
                        conn, rule, window, history.get(key, {}), alert, now, events
                    )
        return events

    def _evaluate_window(
        self,
        conn: Connection,
        rule: RuleSettings,
        window: WindowKey,
        history: Mapping[datetime, WindowCounts],
        alert: outbox.StoredAlert | None,
        now: datetime,
        events: list[AlertEvent],
    ) -> outbox.StoredAlert | None:
        """Assess one window, step its alert, store the outcome; the alert still firing."""
        counts = history.get(window.window_start)
        if counts is None:  # pruned by retention meanwhile
            return alert
        if alert is None and below_minimum(rule, counts):
            # The most common case by far (a quiet key's window): it cannot open an alert,
            # so its baseline is not even gathered. What `assess` and `observe` would say.
            return None
        baseline = baseline_of(history, window.window_start, rule.window, rule.baseline_windows)
        assessment = assess(rule, counts, baseline)
        decision = observe(
            alert.state if alert else None, assessment, window, now, rule.repeat_interval
        )
        if alert is None and (decision.after is None or decision.notify is None):
            return None  # the common case, a quiet key: nothing to store, no figures to build
        figures = figures_document(window, assessment.figures, rule.metric)
        if alert is not None:
            # The alert keeps the figures of its peak window, the one its severity reflects,
            # not those of the quiet window that resolves it.
            anomalous = assessment.status in (Status.FIRING, Status.ELEVATED)
            newest = window.window_start >= alert.state.last_window_start
            peak = figures["score"] >= alert.figures["score"]
            kept = figures if anomalous and newest and peak else alert.figures
            return self._advance(conn, alert, decision, kept, now, events)
        assert decision.after is not None and decision.notify is not None  # see the return above
        opened = outbox.open_alert(
            conn,
            fingerprint=fingerprint(rule.name, rule.dimension, window.key),
            rule=rule.name,
            dimension=rule.dimension,
            key=window.key,
            window_seconds=rule.window_seconds,
            state=decision.after,
            figures=figures,
            now=now,
        )
        events.append(self._notify(conn, opened, decision.notify, decision.reason, now))
        return opened

    def _sweep(self, conn: Connection, now: datetime) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for alert in outbox.firing_alerts(conn).values():
            rule = self._rules.get(alert.rule)
            if rule is None:
                decision = Decision(
                    alert.state, None, Kind.RESOLVED, f"rule {alert.rule!r} is no longer configured"
                )
            else:
                decision = lifecycle.sweep(alert.state, now, rule.quiet_period)
            self._advance(conn, alert, decision, alert.figures, now, events)
        return events

    def _advance(
        self,
        conn: Connection,
        alert: outbox.StoredAlert,
        decision: Decision,
        figures: dict[str, Any],
        now: datetime,
        events: list[AlertEvent],
    ) -> outbox.StoredAlert | None:
        """Store the decision on a firing alert; the alert if it is still firing."""
        unchanged = decision.after == decision.before and figures == alert.figures
        if unchanged and decision.notify is None:
            return alert
        saved = outbox.save_alert(
            conn, alert, decision.after, figures, now, notified=decision.notify is not None
        )
        if decision.notify is not None:
            events.append(self._notify(conn, saved, decision.notify, decision.reason, now))
        return saved if decision.after is not None else None

    def _notify(
        self, conn: Connection, alert: outbox.StoredAlert, kind: Kind, reason: str, now: datetime
    ) -> AlertEvent:
        """Queue a notification of `alert` for every channel routed to it."""
        channels = self.settings.channels_for(alert.rule, alert.state.severity)
        headlines: list[dict[str, Any]] = []
        if kind is not Kind.RESOLVED and channels:
            headlines = sample_headlines(
                conn,
                alert.dimension,
                alert.key,
                datetime.fromisoformat(str(alert.figures["window_start"])),
                datetime.fromisoformat(str(alert.figures["window_end"])),
                self.settings.sample_headlines,
                stories=self._rules[alert.rule].count == "stories"
                if alert.rule in self._rules
                else False,
            )

        def payload_for(channel: str, idempotency_key: str) -> dict[str, Any]:
            return notification_document(
                alert=alert,
                kind=kind,
                reason=reason,
                headlines=headlines,
                channel=channel,
                idempotency_key=idempotency_key,
                now=now,
            )

        outbox.enqueue(conn, alert, kind, channels, payload_for, now)
        log.info(
            "alert %s: %s on %s %s: %s",
            kind,
            alert.rule,
            alert.dimension,
            alert.key,
            reason,
            extra={"alert_id": alert.id, "channels": channels},
        )
        return AlertEvent(
            alert_id=alert.id,
            fingerprint=alert.fingerprint,
            rule=alert.rule,
            dimension=alert.dimension,
            key=alert.key,
            kind=kind,
            severity=alert.state.severity,
            reason=reason,
            channels=tuple(channels),
        )
