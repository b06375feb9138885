"""Incidents in event time: one per (rule, dimension, key, episode). Pure; the caller passes
`now` (processing time) and the watermark (event time).

An *episode* is a run of anomalous windows of one key in event time; windows less than
`hold` apart belong to the same episode. Each step returns a `Decision`: the
incident before and after, the notification it needs (if any) and the reason, like
Alertmanager's dedup stage, so "why did (not) this notify?" always has an answer.

    no incident --closed window FIRING--> firing                    notify "firing"
    firing --FIRING at a higher severity--> firing                  notify "escalated"
    firing --FIRING/ELEVATED after repeat_interval--> firing        notify "repeat"
    firing --a closed window after the episode scores normal--> firing, calm
    calm --FIRING within reopen_within--> firing (the same incident, flap damped, silent)
    firing/calm --watermark passes the episode end + hold--> resolved   notify "resolved"

`hold` is the larger of the rule's quiet period and `reopen_within`: an incident resolves,
and says so, only once its key has been calm for that long in event time, so a key that
flaps sends one "firing" and one "resolved", not one pair per flap.

Windows are judged only once closed (alerts/pacing.py), so these steps see each window on
its complete counts, in event-time order per key, however the items arrived: the same items
make the same incidents. A late window (one that comes after its incident's later windows,
or after it resolved) joins the incident whose episode it belongs to; it never opens a
second incident for the same episode, and a resolved incident is updated, not reopened.

An incident found in a window older than `notify_max_age` behind the wall clock is history
(a replay, a long backlog): it is stored with that reason and never notifies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from alerts.detection import Assessment, Status
from alerts.rules import SEVERITY_RANK, Severity
from monitor.durations import format_duration
from monitor.windows import WindowKey


class Kind(StrEnum):
    FIRING = "firing"
    ESCALATED = "escalated"
    REPEAT = "repeat"
    RESOLVED = "resolved"


def fingerprint(rule: str, dimension: str, key: str) -> str:
    """The stable identity of a (rule, dimension, key) across restarts, workers, episodes."""
    return hashlib.sha256(f"{rule}\x1f{dimension}\x1f{key}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Policy:
    """A rule's timing, as the lifecycle needs it."""

    repeat_interval: timedelta
    reopen_within: timedelta
    quiet_period: timedelta
    notify_max_age: timedelta

    @property
    def hold(self) -> timedelta:
        """How long (event time) a key stays calm before its incident resolves."""
        return max(self.quiet_period, self.reopen_within)


@dataclass(frozen=True, slots=True)
class Incident:
    """What the lifecycle knows about one episode of one fingerprint."""

    episode_start: datetime
    """Event time: the start of the episode's earliest anomalous window."""
    anomalous_until: datetime
    """Event time: the end of its newest anomalous (FIRING or ELEVATED) window."""
    severity: Severity
    """The highest severity any of its windows reached."""
    notified_severity: Severity | None
    """The highest severity notified so far; None when it does not notify (history)."""
    detected_at: datetime
    """Processing time: when its first window fired."""
    last_notified_at: datetime | None
    calm: bool = False
    """A closed window after the episode scored normal: resolving unless it fires again."""
    resolved_at: datetime | None = None
    """Processing time: when it resolved."""
    suppressed: str | None = None
    """Why it never notifies (it is history), or None."""

    @property
    def open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True, slots=True)
class Decision:
    """One step: `before` is None when the step opened the incident."""

    before: Incident | None
    after: Incident | None
    notify: Kind | None
    reason: str


def home_of(incidents: Sequence[Incident], window: WindowKey, gap: timedelta) -> int | None:
    """The index of the incident whose episode `window` belongs to (its event-time span
    widened by `gap`, the policy's hold, on both sides); an open one first, then the
    newest."""
    best: int | None = None
    for i, incident in enumerate(incidents):
        near = (
            window.window_end > incident.episode_start - gap
            and window.window_start < incident.anomalous_until + gap
        )
        if not near:
            continue
        if best is None or (incident.open, incident.episode_start) > (
            incidents[best].open,
            incidents[best].episode_start,
        ):
            best = i
    return best


def judge(
    incidents: Sequence[Incident],
    assessment: Assessment,
    window: WindowKey,
    now: datetime,
    policy: Policy,
) -> tuple[int | None, Decision]:
    """Fold the verdict on one closed window into the incidents of its fingerprint.

    Returns the index of the incident it changed (None: a new one, or none at all) and the
    decision; `decision.after` is None when nothing was opened or changed."""
    home = home_of(incidents, window, policy.hold)
    status = assessment.status
    if home is None:
        if status is not Status.FIRING or assessment.severity is None:
            return None, Decision(None, None, None, f"not firing: {status}")
        return None, _open(assessment, window, now, policy)
    incident = incidents[home]
    if status is Status.FIRING or (status is Status.ELEVATED and not incident.calm):
        return home, _extend(incident, assessment, window, now, policy)
    if incident.open and not incident.calm and window.window_start >= incident.anomalous_until:
        f = assessment.figures
        reason = (
            f"the window from {window.window_start.isoformat()} closed {_calm_word(status)} "
            f"({f.n_bearish} of {f.n_total} items bearish); resolves unless it fires again "
            f"within {format_duration(policy.hold)}"
        )
        return home, Decision(incident, replace(incident, calm=True), None, reason)
    return home, Decision(incident, incident, None, f"no change: {status}")


def _open(assessment: Assessment, window: WindowKey, now: datetime, policy: Policy) -> Decision:
    assert assessment.severity is not None
    f = assessment.figures
    age = now - window.window_end
    suppressed = None
    if age > policy.notify_max_age:
        suppressed = (
            f"history: the window ended {format_duration(_whole_seconds(age))} before it was "
            f"judged, more than notify_max_age ({format_duration(policy.notify_max_age)})"
        )
    opened = Incident(
        episode_start=window.window_start,
        anomalous_until=window.window_end,
        severity=assessment.severity,
        notified_severity=None if suppressed else assessment.severity,
        detected_at=now,
        last_notified_at=None if suppressed else now,
        suppressed=suppressed,
    )
    reason = (
        f"negative share {f.negative_share:.0%} against a baseline of "
        f"{f.baseline_share:.0%} (score {f.score:.1f})"
    )
    if suppressed:
        return Decision(None, opened, None, f"{reason}; not notified: {suppressed}")
    return Decision(None, opened, Kind.FIRING, reason)


def _extend(
    incident: Incident, assessment: Assessment, window: WindowKey, now: datetime, policy: Policy
) -> Decision:
    """An anomalous window of the incident's episode (possibly late)."""
    severity = incident.severity
    if assessment.severity is not None and _above(assessment.severity, severity):
        severity = assessment.severity
    after = replace(
        incident,
        episode_start=min(incident.episode_start, window.window_start),
        anomalous_until=max(incident.anomalous_until, window.window_end),
        severity=severity,
        calm=False,
    )
    if not incident.open:
        return Decision(incident, after, None, "late window folded into the resolved incident")
    notified = incident.notified_severity
    if notified is None:
        return Decision(incident, after, None, f"not notified: {incident.suppressed}")
    if _above(severity, notified):
        escalated = replace(after, notified_severity=severity, last_notified_at=now)
        return Decision(
            incident, escalated, Kind.ESCALATED, f"severity rose from {notified} to {severity}"
        )
    last = incident.last_notified_at
    if not incident.calm and last is not None and now - last >= policy.repeat_interval:
        return Decision(
            incident,
            replace(after, last_notified_at=now),
            Kind.REPEAT,
            f"still firing after the repeat interval of {format_duration(policy.repeat_interval)}",
        )
    if incident.calm:
        return Decision(incident, after, None, "fired again while calm: the same incident")
    return Decision(incident, after, None, "deduplicated: the incident is already firing")


def advance(
    incident: Incident, watermark: datetime | None, now: datetime, policy: Policy
) -> Decision:
    """Resolve an open incident once the watermark is `hold` past its episode's end."""
    if not incident.open or watermark is None:
        return Decision(incident, incident, None, "no change")
    if watermark < incident.anomalous_until + policy.hold:
        return Decision(incident, incident, None, "still within the hold")
    resolved = replace(incident, resolved_at=now, calm=True)
    reason = (
        f"no anomalous window for {format_duration(policy.hold)} after "
        f"{incident.anomalous_until.isoformat()}"
    )
    if incident.notified_severity is None:
        return Decision(incident, resolved, None, f"{reason}; not notified: {incident.suppressed}")
    return Decision(incident, replace(resolved, last_notified_at=now), Kind.RESOLVED, reason)


def _above(severity: str, other: str) -> bool:
    return SEVERITY_RANK[severity] > SEVERITY_RANK[other]


def _calm_word(status: Status) -> str:
    return "below the minimum volume" if status is Status.BELOW_MINIMUM else "normal"


def _whole_seconds(delta: timedelta) -> timedelta:
    """`delta` to the whole minute (to the second below one), for a readable reason."""
    seconds = int(delta.total_seconds())
    return timedelta(seconds=seconds if seconds < 60 else seconds // 60 * 60)
