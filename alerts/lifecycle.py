"""The alert state machine and notification dedup. Pure: the caller passes `now`.

One alert per fingerprint (rule + dimension + key) is firing at a time. Each step returns a
`Decision`: the state before and after, the notification to send (if any) and the reason,
like Alertmanager's dedup stage, so "why did (not) this notify?" always has an answer.

    no alert --window FIRING--> firing        notify "firing"
    firing --FIRING, severity rose--> firing  notify "repeat"
    firing --FIRING/ELEVATED after repeat_interval--> firing  notify "repeat"
    firing --a closed window back to normal--> resolved       notify "resolved"
    firing --sweep: no anomalous window for quiet_period--> resolved  notify "resolved"

An open window that looks normal so far does not resolve the alert: it may still fill with
bearish items, and resolving then re-firing would flap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from alerts.detection import Assessment, Status
from alerts.rules import SEVERITY_RANK, Severity
from monitor.durations import format_duration
from monitor.windows import WindowKey

_CALM = {Status.NORMAL: "normal", Status.BELOW_MINIMUM: "below the minimum volume"}


class Kind(StrEnum):
    FIRING = "firing"
    REPEAT = "repeat"
    RESOLVED = "resolved"


def fingerprint(rule: str, dimension: str, key: str) -> str:
    """The stable identity of an alert across restarts, workers and incidents."""
    return hashlib.sha256(f"{rule}\x1f{dimension}\x1f{key}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class AlertState:
    """What the state machine knows about a firing alert."""

    severity: Severity
    """The highest severity notified so far: a drop never lowers it, a rise re-notifies."""
    started_at: datetime
    last_notified_at: datetime
    last_window_start: datetime
    """The newest window evaluated; older windows (late items) no longer change the alert."""
    anomalous_until: datetime
    """The end of the newest window that scored FIRING or ELEVATED."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One step: `before`/`after` are None when no alert is firing."""

    before: AlertState | None
    after: AlertState | None
    notify: Kind | None
    reason: str


def observe(
    state: AlertState | None,
    assessment: Assessment,
    window: WindowKey,
    now: datetime,
    repeat_interval: timedelta,
) -> Decision:
    """Advance the alert of one fingerprint with the assessment of one of its windows."""
    status, figures = assessment.status, assessment.figures
    if state is None:
        if status is not Status.FIRING or assessment.severity is None:
            return Decision(None, None, None, f"not firing: {status}")
        opened = AlertState(
            severity=assessment.severity,
            started_at=now,
            last_notified_at=now,
            last_window_start=window.window_start,
            anomalous_until=window.window_end,
        )
        reason = (
            f"negative share {figures.negative_share:.0%} against a baseline of "
            f"{figures.baseline_share:.0%} (score {figures.score:.1f})"
        )
        return Decision(None, opened, Kind.FIRING, reason)

    if window.window_start < state.last_window_start:
        return Decision(state, state, None, "ignored: older than the newest window evaluated")

    if status in (Status.FIRING, Status.ELEVATED):
        after = replace(
            state,
            last_window_start=window.window_start,
            anomalous_until=max(state.anomalous_until, window.window_end),
        )
        severity = assessment.severity
        if severity is not None and SEVERITY_RANK[severity] > SEVERITY_RANK[state.severity]:
            escalated = replace(after, severity=severity, last_notified_at=now)
            return Decision(
                state, escalated, Kind.REPEAT, f"severity rose from {state.severity} to {severity}"
            )
        if now - state.last_notified_at >= repeat_interval:
            return Decision(
                state,
                replace(after, last_notified_at=now),
                Kind.REPEAT,
                f"still firing after the repeat interval of {format_duration(repeat_interval)}",
            )
        return Decision(
            state,
            after,
            None,
            f"deduplicated: notified at {state.last_notified_at.isoformat()}",
        )

    counts = f"{figures.n_bearish} of {figures.n_total} items bearish"
    if window.window_end <= now:
        return Decision(
            state,
            None,
            Kind.RESOLVED,
            f"the window from {window.window_start.isoformat()} closed {_CALM[status]} ({counts})",
        )
    return Decision(
        state,
        replace(state, last_window_start=window.window_start),
        None,
        f"open window {_CALM[status]} so far ({counts})",
    )


def sweep(state: AlertState, now: datetime, quiet_period: timedelta) -> Decision:
    """Resolve an alert whose key produced no anomalous window for `quiet_period`."""
    if now >= state.anomalous_until + quiet_period:
        return Decision(
            state,
            None,
            Kind.RESOLVED,
            f"no anomalous window since {state.anomalous_until.isoformat()}",
        )
    return Decision(state, state, None, "still within the quiet period")
