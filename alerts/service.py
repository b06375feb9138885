"""The facade the worker and replay call: note, evaluate, sweep, deliver.

    service = AlertService.from_settings(settings, engine)
    service.note_stored(windows, newest)   # after each stored batch: windows touched, and
                                           # the newest published_at per input partition
    service.evaluate_due()                 # every `evaluate_every`: closed, settled windows
    service.sweep(now)                     # every few seconds: resolve by the watermark
    service.deliver_pending(now)           # every few seconds: flush groups, send

`evaluate` and `sweep` run detection and the lifecycle (pure) and write incidents with their
notices in one transaction; `deliver_pending` flushes due groups into messages and sends
them. The watermark and the pacer take an injected monotonic clock, so tests and the
quality benchmark run the very same code on a fake clock.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from alerts import outbox
from alerts.channels import Channel, build_channels
from alerts.delivery import DeliveryStats, Dispatcher, RetryPolicy
from alerts.detection import Status, assess, baseline_of, below_minimum
from alerts.grouping import flush_due_at, group_key, group_labels, message_kind
from alerts.lifecycle import Decision, Incident, Kind, Policy, advance, fingerprint, judge
from alerts.pacing import EvaluationPacer
from alerts.payload import alert_document, figures_document, message_document
from alerts.rules import AlertSettings, RouteSettings, RuleSettings
from alerts.sources import read_windows, sample_headlines
from alerts.watermark import Watermark
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
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._wall = wall
        self.engine = engine
        self._pacer = EvaluationPacer(
            settings.evaluate_every.total_seconds(), settings.idle_timeout.total_seconds()
        )
        self.watermark = Watermark(settings.allowed_lateness, settings.idle_timeout)
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
        cls,
        settings: Settings,
        engine: Engine,
        *,
        environ: Mapping[str, str] = os.environ,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
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
        return cls(alert_settings, engine, channels, monotonic=monotonic, wall=wall)

    def policy(self, rule: RuleSettings) -> Policy:
        return Policy(
            repeat_interval=rule.repeat_interval,
            reopen_within=self.settings.reopen_within,
            quiet_period=rule.quiet_period,
            notify_max_age=self.settings.notify_max_age,
        )

    def note_stored(
        self, touched: Iterable[WindowKey], newest: Mapping[Hashable, datetime] | None = None
    ) -> None:
        """Note the windows a stored batch touched that some rule judges, for the next
        `evaluate_due`, and the newest `published_at` it held per input partition, for the
        watermark (pure, cannot fail: the batch does not wait for the rules)."""
        shapes = self._rules_by_shape
        clock = self._monotonic()
        before = self.watermark.current(clock, self._wall())
        self._pacer.add((w for w in touched if (w.dimension, w.window_seconds) in shapes), before)
        if newest:
            self.watermark.note(newest, clock)

    def finish_input(self) -> None:
        """The input has ended (the end of a replayed file): every window counts as closed."""
        self.watermark.finish()

    @property
    def windows_pending(self) -> int:
        """Windows stored and not judged yet (open, unsettled, or waiting for the timer)."""
        return self._pacer.pending

    def incidents_detected_since(self, since: datetime) -> tuple[int, int]:
        """Incidents detected since `since` (processing time), and how many of them are
        history (stored, never delivered)."""
        with self.engine.connect() as conn:
            return outbox.detected_since(conn, since)

    def current_watermark(self, now: datetime) -> datetime | None:
        """The watermark, `now` being the wall clock."""
        return self.watermark.current(self._monotonic(), now)

    def evaluate_due(self, now: datetime | None = None) -> list[AlertEvent]:
        """Judge the closed, settled windows noted so far, if the last evaluation is
        `evaluate_every` old (the worker's timer calls this every `evaluate_every`)."""
        now = now or self._wall()
        keys = self._pacer.take_due(self._monotonic(), self.current_watermark(now))
        return self._evaluate_taken(keys, now)

    def evaluate_pending(self, now: datetime | None = None) -> list[AlertEvent]:
        """Judge every closed window now, settled or not (the end of a replay, shutdown)."""
        now = now or self._wall()
        keys = self._pacer.take_all(self._monotonic(), self.current_watermark(now))
        return self._evaluate_taken(keys, now)

    def _evaluate_taken(self, keys: list[WindowKey], now: datetime) -> list[AlertEvent]:
        if not keys:
            return []
        try:
            return self.evaluate(keys, now)
        except Exception:
            self._pacer.give_back(keys)  # judged at the next hand-out instead
            raise

    def evaluate(self, windows: Iterable[WindowKey], now: datetime) -> list[AlertEvent]:
        """Judge closed windows; store the incidents they open or change, and their notices.

        Only windows of a rule's dimension and size are read (one query per rule, with
        their baselines); nothing is read at all when no window matches a rule."""
        plan: dict[str, dict[str, set[WindowKey]]] = defaultdict(lambda: defaultdict(set))
        if self.settings.enabled:
            for window in windows:
                for rule in self._rules_by_shape.get((window.dimension, window.window_seconds), ()):
                    plan[rule.name][window.key].add(window)
        if not plan:
            return []
        return self._in_transaction(lambda conn: self._evaluate(conn, plan, now))

    def sweep(self, now: datetime) -> list[AlertEvent]:
        """Resolve the open incidents the watermark has carried `hold` past their episode
        (a key that went quiet writes no window, so no `evaluate` would)."""
        if not self.settings.enabled:
            return []
        watermark = self.current_watermark(now)
        return self._in_transaction(lambda conn: self._sweep(conn, watermark, now))

    def deliver_pending(self, now: datetime, *, flush_all: bool = False) -> DeliveryStats:
        """Flush the groups that are due (every waiting group with `flush_all`) into
        messages, then send due messages with the retry policy; each is marked sent only
        once accepted."""
        self._in_transaction(lambda conn: self._flush_groups(conn, now, flush_all))
        return self.dispatcher.deliver_pending(now)

    def deliver_pending_until_idle(self, now: datetime | None = None) -> int:
        """Flush every waiting group (a one-shot run does not wait out `group_wait`) and
        deliver until nothing is due at `now` (default: the current time); the number sent.
        For replay and one-shot runs; failures are retried later, not waited for."""
        now = now or self._wall()
        sent = 0
        while stats := self.deliver_pending(now, flush_all=True):
            sent += stats.sent
        return sent

    def _in_transaction(self, work: Callable[[Connection], list[Any]]) -> list[Any]:
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

    # -- judging windows -----------------------------------------------------------------

    def _evaluate(
        self, conn: Connection, plan: Mapping[str, Mapping[str, set[WindowKey]]], now: datetime
    ) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for name, keys in plan.items():
            rule = self._rules[name]
            starts = [w.window_start for windows in keys.values() for w in windows]
            history = read_windows(
                conn,
                rule.dimension,
                rule.window_seconds,
                keys,
                # twice the baseline: each baseline window is judged against its own
                min(starts) - rule.window * (2 * rule.baseline_windows),
                max(starts),
            )
            if rule.count == "stories":
                history = {
                    key: {start: c.stories() for start, c in by_start.items()}
                    for key, by_start in history.items()
                }
            known = outbox.incidents_near(
                conn,
                {fingerprint(name, rule.dimension, key) for key in keys},
                min(starts) - self.policy(rule).hold,
            )
            for key, windows in sorted(keys.items()):
                incidents = known.get(fingerprint(name, rule.dimension, key), [])
                for window in sorted(windows):
                    incidents = self._judge_window(
                        conn, rule, window, history.get(key, {}), incidents, now, events
                    )
        return events

    def _judge_window(
        self,
        conn: Connection,
        rule: RuleSettings,
        window: WindowKey,
        history: Mapping[datetime, WindowCounts],
        incidents: list[outbox.StoredAlert],
        now: datetime,
        events: list[AlertEvent],
    ) -> list[outbox.StoredAlert]:
        """Assess one closed window and fold it into its incidents; the incidents after."""
        counts = history.get(window.window_start)
        if counts is None:  # pruned by retention meanwhile
            return incidents
        if not incidents and below_minimum(rule, counts):
            # The most common case by far (a quiet key's window): it cannot open an
            # incident, so its baseline is not even gathered. What `judge` would say.
            return incidents
        policy = self.policy(rule)
        incidents = self._resolve_ended(conn, incidents, window, policy, now, events)
        baseline = baseline_of(rule, history, window.window_start)
        assessment = assess(rule, counts, baseline)
        index, decision = judge([i.incident for i in incidents], assessment, window, now, policy)
        if decision.after is None:
            return incidents
        figures = figures_document(window, assessment.figures, rule.metric)
        if index is None:
            opened = outbox.open_alert(
                conn,
                fingerprint=fingerprint(rule.name, rule.dimension, window.key),
                rule=rule.name,
                dimension=rule.dimension,
                key=window.key,
                window_seconds=rule.window_seconds,
                incident=decision.after,
                figures=figures,
                notified=decision.notify is not None,
                now=now,
            )
            self._record(conn, opened, decision, now, events)
            return [*incidents, opened]
        alert = incidents[index]
        # An incident keeps the figures of its peak window, the one its severity reflects.
        anomalous = assessment.status in (Status.FIRING, Status.ELEVATED)
        peak = alert.figures.get("score", float("-inf"))
        kept = figures if anomalous and figures["score"] >= peak else alert.figures
        saved = self._save(conn, alert, decision, kept, now, events)
        return [saved if i == index else other for i, other in enumerate(incidents)]

    def _resolve_ended(
        self,
        conn: Connection,
        incidents: list[outbox.StoredAlert],
        window: WindowKey,
        policy: Policy,
        now: datetime,
        events: list[AlertEvent],
    ) -> list[outbox.StoredAlert]:
        """Resolve the open incidents a closed window proves over: event time has reached
        its end, whether or not the sweep has run since (a backlog judges many windows in
        one evaluation)."""
        ended = []
        for alert in incidents:
            decision = advance(alert.incident, window.window_end, now, policy)
            if decision.after != decision.before:
                alert = self._save(conn, alert, decision, alert.figures, now, events)
            ended.append(alert)
        return ended

    def _sweep(
        self, conn: Connection, watermark: datetime | None, now: datetime
    ) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for alert in outbox.open_incidents(conn):
            rule = self._rules.get(alert.rule)
            if rule is None:
                decision = Decision(
                    alert.incident,
                    _resolved(alert.incident, now),
                    Kind.RESOLVED if alert.incident.notified_severity else None,
                    f"rule {alert.rule!r} is no longer configured",
                )
            else:
                decision = advance(alert.incident, watermark, now, self.policy(rule))
            if decision.after != decision.before:
                self._save(conn, alert, decision, alert.figures, now, events)
        return events

    def _save(
        self,
        conn: Connection,
        alert: outbox.StoredAlert,
        decision: Decision,
        figures: dict[str, Any],
        now: datetime,
        events: list[AlertEvent],
    ) -> outbox.StoredAlert:
        assert decision.after is not None
        if decision.after == decision.before and figures == alert.figures:
            return alert
        saved = outbox.save_alert(
            conn, alert, decision.after, figures, now, notified=decision.notify is not None
        )
        self._record(conn, saved, decision, now, events)
        return saved

    def _record(
        self,
        conn: Connection,
        alert: outbox.StoredAlert,
        decision: Decision,
        now: datetime,
        events: list[AlertEvent],
    ) -> None:
        """Queue the decision's notice for every channel routed to `alert`, in its group."""
        if decision.notify is None:
            if decision.before is None:
                log.info(
                    "incident stored, not notified: %s on %s %s: %s",
                    alert.rule,
                    alert.dimension,
                    alert.key,
                    decision.reason,
                    extra={"alert_id": alert.id},
                )
            return
        targets = []
        for route, channel in self.settings.routes_for(alert.rule, alert.incident.severity):
            labels = group_labels(self.settings.routes[route].group_by, _labels(alert))
            targets.append((route, group_key(route, channel, labels), channel))
        outbox.add_notices(conn, alert, decision.notify, decision.reason, targets, now)
        log.info(
            "alert %s: %s on %s %s: %s",
            decision.notify,
            alert.rule,
            alert.dimension,
            alert.key,
            decision.reason,
            extra={"alert_id": alert.id, "channels": [c for _, _, c in targets]},
        )
        events.append(
            AlertEvent(
                alert_id=alert.id,
                fingerprint=alert.fingerprint,
                rule=alert.rule,
                dimension=alert.dimension,
                key=alert.key,
                kind=decision.notify,
                severity=alert.incident.severity,
                reason=decision.reason,
                channels=tuple(c for _, _, c in targets),
            )
        )

    # -- grouping notices into messages --------------------------------------------------

    def _route(self, index: int) -> RouteSettings:
        """The route a notice was queued for; the defaults if the config lost it since."""
        routes = self.settings.routes
        return routes[index] if index < len(routes) else RouteSettings(channels=["-"])

    def _flush_groups(self, conn: Connection, now: datetime, flush_all: bool) -> list[int]:
        """Store one message for every group whose flush is due; their ids."""
        flushed = []
        for group in outbox.waiting_groups(conn):
            notices = outbox.waiting_notices(conn, group.group_key, group.channel)
            if not notices:
                continue
            route = self._route(notices[0].route)
            due = flush_due_at(
                group.oldest, group.last_flush, route.group_wait, route.group_interval
            )
            if due > now and not flush_all:
                continue
            flushed.append(self._flush(conn, group, notices, route, now))
        return flushed

    def _flush(
        self,
        conn: Connection,
        group: outbox.WaitingGroup,
        notices: list[outbox.Notice],
        route: RouteSettings,
        now: datetime,
    ) -> int:
        documents = []
        for notice in notices:
            alert = notice.alert
            headlines: list[dict[str, Any]] = []
            if notice.kind != Kind.RESOLVED:
                headlines = sample_headlines(
                    conn,
                    alert.dimension,
                    alert.key,
                    datetime.fromisoformat(str(alert.figures["window_start"])),
                    datetime.fromisoformat(str(alert.figures["window_end"])),
                    self.settings.sample_headlines,
                    stories=alert.rule in self._rules
                    and self._rules[alert.rule].count == "stories",
                )
            documents.append(alert_document(alert, notice.kind, notice.reason, headlines))
        ids = [n.id for n in notices]
        key = outbox.delivery_key(group.group_key, group.channel, ids)
        kind = message_kind([n.alert.incident.open for n in notices])
        payload = message_document(
            kind=kind,
            alerts=documents,
            group_key=group.group_key,
            labels=group_labels(route.group_by, _labels(notices[0].alert)),
            route=notices[0].route,
            channel=group.channel,
            idempotency_key=key,
            now=now,
        )
        return outbox.add_delivery(
            conn,
            group=group.group_key,
            channel=group.channel,
            kind=kind,
            idempotency_key=key,
            payload=payload,
            notice_ids=ids,
            now=now,
        )


def _labels(alert: outbox.StoredAlert) -> dict[str, str]:
    return {"rule": alert.rule, "dimension": alert.dimension, "key": alert.key}


def _resolved(incident: Incident, now: datetime) -> Incident:
    return replace(incident, resolved_at=now, last_notified_at=now)
