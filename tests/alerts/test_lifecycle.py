"""Incidents in event time: lifecycle tables, and the permutation property (same items,
any order within the allowed lateness, same incidents). Pure, on a fake clock."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.detection import Assessment, Figures, Status, assess, baseline_of
from alerts.lifecycle import Incident, Kind, Policy, advance, fingerprint, judge
from alerts.pacing import EvaluationPacer
from alerts.rules import RuleSettings
from alerts.watermark import Watermark
from monitor.windows import WindowCounts, WindowKey, window_start

SIZE = timedelta(minutes=5)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=4)
POLICY = Policy(
    repeat_interval=timedelta(hours=4),
    reopen_within=timedelta(minutes=15),
    quiet_period=SIZE,
    notify_max_age=timedelta(hours=1),
)
FIGURES = Figures(10, 8, 2, 0, -0.7, 0.8, 12, 60, 0.2, 1.0, 6.0, 7.0, 6.0)


def window(i: int) -> WindowKey:
    return WindowKey(300, T0 + i * SIZE, "ticker", "ACME")


def verdict(status: Status, severity: str | None = None) -> Assessment:
    return Assessment(status, severity, FIGURES)  # type: ignore[arg-type]


def firing(first: int, last: int, **changes: object) -> Incident:
    """An open incident over windows first..last, notified at warning."""
    base = Incident(
        window(first).window_start,
        window(last).window_end,
        "warning",
        "warning",
        NOW - timedelta(minutes=30),
        NOW - timedelta(minutes=30),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_fingerprint_is_stable_and_distinguishes_its_parts() -> None:
    parts = [("r", "ticker", "A"), ("r", "topic", "A"), ("s", "ticker", "A")]
    assert fingerprint(*parts[0]) == fingerprint(*parts[0])
    assert len({fingerprint(*p) for p in parts}) == 3


FIRE = verdict(Status.FIRING, "warning")
CRIT = verdict(Status.FIRING, "critical")
CALM = verdict(Status.NORMAL)
HIGH = verdict(Status.ELEVATED)


@pytest.mark.parametrize(
    ("case", "incidents", "assessment", "win", "now", "home", "notify", "check"),
    [
        (
            "opens",
            [],
            FIRE,
            40,
            NOW,
            None,
            Kind.FIRING,
            lambda i: i.episode_start == window(40).window_start,
        ),
        ("calm key: nothing", [], CALM, 40, NOW, None, None, lambda i: i is None),
        (
            "history is stored, not notified",
            [],
            FIRE,
            10,
            NOW,
            None,
            None,
            lambda i: i.suppressed and i.notified_severity is None,
        ),
        (
            "deduplicated",
            [firing(40, 41)],
            FIRE,
            42,
            NOW,
            0,
            None,
            lambda i: i.anomalous_until == window(42).window_end,
        ),
        (
            "late window extends it backwards",
            [firing(40, 42)],
            FIRE,
            39,
            NOW,
            0,
            None,
            lambda i: i.episode_start == window(39).window_start,
        ),
        (
            "late window never opens a second one",
            [firing(40, 42)],
            FIRE,
            41,
            NOW,
            0,
            None,
            lambda i: i.anomalous_until == window(42).window_end,
        ),
        (
            "escalates",
            [firing(40, 41)],
            CRIT,
            42,
            NOW,
            0,
            Kind.ESCALATED,
            lambda i: i.notified_severity == "critical",
        ),
        (
            "repeats after the interval",
            [firing(40, 41)],
            HIGH,
            42,
            NOW + timedelta(hours=5),
            0,
            Kind.REPEAT,
            lambda i: i.last_notified_at == NOW + timedelta(hours=5),
        ),
        (
            "a normal closed window calms it",
            [firing(40, 41)],
            CALM,
            42,
            NOW,
            0,
            None,
            lambda i: i.calm and i.open,
        ),
        (
            "a normal window inside the episode does not",
            [firing(40, 42)],
            CALM,
            41,
            NOW,
            0,
            None,
            lambda i: not i.calm,
        ),
        (
            "fires again within reopen_within: same incident, silent",
            [firing(40, 41, calm=True)],
            FIRE,
            44,
            NOW,
            0,
            None,
            lambda i: not i.calm,
        ),
        (
            "elevated does not revive a calm one",
            [firing(40, 41, calm=True)],
            HIGH,
            43,
            NOW,
            0,
            None,
            lambda i: i.calm and i.anomalous_until == window(41).window_end,
        ),
        (
            "late window of a resolved incident updates it",
            [firing(40, 41, resolved_at=NOW, calm=True)],
            FIRE,
            42,
            NOW,
            0,
            None,
            lambda i: not i.open and i.anomalous_until == window(42).window_end,
        ),
        (
            "beyond reopen_within: a new episode",
            [firing(40, 41, resolved_at=NOW)],
            FIRE,
            46,
            NOW,
            None,
            Kind.FIRING,
            lambda i: i.episode_start == window(46).window_start,
        ),
    ],
)
def test_judge(
    case: str,
    incidents: list[Incident],
    assessment: Assessment,
    win: int,
    now: datetime,
    home: int | None,
    notify: Kind | None,
    check: object,
) -> None:
    index, decision = judge(incidents, assessment, window(win), now, POLICY)
    assert (index, decision.notify) == (home, notify), decision.reason
    assert check(decision.after), decision.reason  # type: ignore[operator]
    assert decision.reason


@pytest.mark.parametrize(
    ("incident", "watermark", "notify", "resolved"),
    [
        (firing(40, 41), window(43).window_end, None, False),  # 15 min hold not over
        (firing(40, 41), window(45).window_end, Kind.RESOLVED, True),
        (firing(40, 41, calm=True), window(45).window_end, Kind.RESOLVED, True),
        (
            firing(40, 41, notified_severity=None, suppressed="history"),
            window(45).window_end,
            None,
            True,
        ),  # history resolves silently
        (firing(40, 41), None, None, False),
    ],
)
def test_advance(
    incident: Incident, watermark: datetime | None, notify: Kind | None, resolved: bool
) -> None:
    decision = advance(incident, watermark, NOW, POLICY)
    assert decision.notify == notify
    assert decision.after is not None and (not decision.after.open) is resolved


# --- the permutation property ----------------------------------------------------------

RULE = RuleSettings(
    name="r",
    dimension="ticker",
    window=SIZE,
    min_volume=5,
    min_bearish=3,
    min_share_increase=0.3,
)
LATENESS = timedelta(minutes=2)


def stream(seed: int) -> list[tuple[datetime, str]]:
    """Two hours of calm news on one key with one or two bearish bursts."""
    rng = random.Random(seed)
    items = []
    for minute in range(120):
        for _ in range(rng.randint(0, 3)):
            sentiment = "bearish" if rng.random() < 0.15 else rng.choice(["neutral", "bullish"])
            items.append((T0 + timedelta(minutes=minute, seconds=rng.randint(0, 59)), sentiment))
    for start in rng.sample(range(60, 110, 10), rng.randint(1, 2)):
        for k in range(rng.randint(10, 14)):
            items.append((T0 + timedelta(minutes=start, seconds=20 * k), "bearish"))
    return sorted(items)


def run(arrivals: list[tuple[datetime, str]], batch: int) -> list[tuple[datetime, datetime, str]]:
    """The worker's path in miniature: batches stored, the watermark noted, closed and settled
    windows judged in event-time order, incidents advanced; at the end the input finishes."""
    counts: dict[datetime, WindowCounts] = defaultdict(WindowCounts)
    pacer, mark = EvaluationPacer(0), Watermark(LATENESS, timedelta(hours=1))
    incidents: list[Incident] = []
    now = T0 + timedelta(hours=3)

    def evaluate(windows: list[WindowKey], clock: float) -> None:
        for key in sorted(windows):
            baseline = baseline_of(RULE, counts, key.window_start)
            index, decision = judge(
                incidents, assess(RULE, counts[key.window_start], baseline), key, now, POLICY
            )
            if decision.after is not None:
                if index is None:
                    incidents.append(decision.after)
                else:
                    incidents[index] = decision.after
        for i, incident in enumerate(incidents):
            after = advance(incident, mark.current(clock, T0), now, POLICY).after
            incidents[i] = after or incident

    clock = 0.0
    for offset in range(0, len(arrivals), batch):
        part = arrivals[offset : offset + batch]
        clock += 1
        for at, sentiment in part:
            start = window_start(at, SIZE)
            counts[start].merge(
                WindowCounts(
                    *(int(sentiment == s) for s in ("bearish", "neutral", "bullish")), -1.0
                )
            )
            pacer.add([WindowKey(300, start, "ticker", "ACME")])
        mark.note({0: max(at for at, _ in part)}, clock)
        evaluate(pacer.take_due(clock, mark.current(clock, T0)), clock)
    mark.finish()
    evaluate(pacer.take_all(clock + 1, mark.current(clock + 1, T0)), clock + 1)
    return [(i.episode_start, i.anomalous_until, i.severity) for i in incidents]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 20))
def test_any_order_within_the_allowed_lateness_gives_the_same_incidents(
    seed: int, shuffle_seed: int, batch: int
) -> None:
    items = stream(seed)
    rng = random.Random(shuffle_seed)
    late = LATENESS.total_seconds()
    # each item arrives at its time plus up to `allowed_lateness`: never behind the watermark
    shuffled = sorted(items, key=lambda item: item[0] + timedelta(seconds=rng.uniform(0, late)))
    in_order = run(items, batch)
    assert in_order, "every stream has a burst"
    assert run(shuffled, batch) == in_order
