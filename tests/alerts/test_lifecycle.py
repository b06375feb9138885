"""The alert lifecycle: table-driven transitions, and streams run on a fake clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.detection import Assessment, Figures, Status, assess, baseline_of
from alerts.lifecycle import AlertState, Kind, fingerprint, observe, sweep
from alerts.rules import RuleSettings
from monitor.windows import WindowCounts, WindowKey

SIZE = timedelta(minutes=5)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
REPEAT = timedelta(hours=4)
FIGURES = Figures(10, 8, 2, 0, -0.7, 0.8, 12, 60, 0.2, 1.0, 6.0, 7.0, 6.0)


def window(i: int) -> WindowKey:
    return WindowKey(300, T0 + i * SIZE, "ticker", "ACME")


def verdict(status: Status, severity: str | None = None) -> Assessment:
    return Assessment(status, severity, FIGURES)  # type: ignore[arg-type]


FIRING = AlertState(
    severity="warning",
    started_at=T0 + SIZE,
    last_notified_at=T0 + SIZE,
    last_window_start=window(1).window_start,
    anomalous_until=window(1).window_end,
)


def test_fingerprint_is_stable_and_distinguishes_its_parts() -> None:
    assert fingerprint("r", "ticker", "ACME") == fingerprint("r", "ticker", "ACME")
    assert (
        len(
            {
                fingerprint(*p)
                for p in [("r", "ticker", "A"), ("r", "topic", "A"), ("s", "ticker", "A")]
            }
        )
        == 3
    )


@pytest.mark.parametrize(
    ("case", "state", "assessment", "win", "now", "notify", "firing_after", "reason"),
    [
        (
            "fires",
            None,
            verdict(Status.FIRING, "warning"),
            1,
            1.5,
            Kind.FIRING,
            True,
            "negative share",
        ),
        (
            "elevated alone never opens",
            None,
            verdict(Status.ELEVATED),
            1,
            1.5,
            None,
            False,
            "not firing",
        ),
        ("normal", None, verdict(Status.NORMAL), 1, 1.5, None, False, "not firing"),
        (
            "dedup while firing",
            FIRING,
            verdict(Status.FIRING, "warning"),
            1,
            1.9,
            None,
            True,
            "deduplicated",
        ),
        (
            "dedup on lower severity",
            FIRING,
            verdict(Status.FIRING, "info"),
            2,
            2.5,
            None,
            True,
            "deduplicated",
        ),
        (
            "severity rises",
            FIRING,
            verdict(Status.FIRING, "critical"),
            2,
            2.5,
            Kind.REPEAT,
            True,
            "severity rose",
        ),
        (
            "repeat interval passed",
            FIRING,
            verdict(Status.ELEVATED),
            60,
            60.5,
            Kind.REPEAT,
            True,
            "repeat interval",
        ),
        (
            "open window normal so far",
            FIRING,
            verdict(Status.NORMAL),
            2,
            2.2,
            None,
            True,
            "open window",
        ),
        (
            "closed window normal",
            FIRING,
            verdict(Status.NORMAL),
            2,
            3.5,
            Kind.RESOLVED,
            False,
            "closed normal",
        ),
        (
            "closed window quiet",
            FIRING,
            verdict(Status.BELOW_MINIMUM),
            2,
            3.5,
            Kind.RESOLVED,
            False,
            "minimum",
        ),
        (
            "late item in an older window",
            FIRING,
            verdict(Status.NORMAL),
            0,
            3.5,
            None,
            True,
            "older",
        ),
    ],
)
def test_observe(
    case: str,
    state: AlertState | None,
    assessment: Assessment,
    win: int,
    now: float,
    notify: Kind | None,
    firing_after: bool,
    reason: str,
) -> None:
    decision = observe(state, assessment, window(win), T0 + now * SIZE, REPEAT)
    assert decision.notify is notify, case
    assert (decision.after is not None) is firing_after, case
    assert reason in decision.reason, case


def test_escalation_keeps_the_highest_severity_and_stamps_the_notification() -> None:
    now = T0 + 2.5 * SIZE
    up = observe(FIRING, verdict(Status.FIRING, "critical"), window(2), now, REPEAT).after
    assert up is not None and (up.severity, up.last_notified_at) == ("critical", now)
    down = observe(up, verdict(Status.FIRING, "warning"), window(3), now + SIZE, REPEAT).after
    assert down is not None and down.severity == "critical"


def test_anomalous_windows_extend_the_alert() -> None:
    after = observe(FIRING, verdict(Status.ELEVATED), window(3), T0 + 3.5 * SIZE, REPEAT).after
    assert after == replace(
        FIRING, last_window_start=window(3).window_start, anomalous_until=window(3).window_end
    )


@pytest.mark.parametrize(("minutes", "resolves"), [(0, False), (4, False), (5, True), (60, True)])
def test_sweep_resolves_after_the_quiet_period(minutes: int, resolves: bool) -> None:
    now = FIRING.anomalous_until + timedelta(minutes=minutes)
    decision = sweep(FIRING, now, SIZE)
    assert (decision.notify is Kind.RESOLVED) is resolves
    assert (decision.after is None) is resolves


# --- streams on a fake clock --------------------------------------------------------------

RULE = RuleSettings(name="r", dimension="ticker", window=SIZE, min_volume=5, min_bearish=3)


def spread(bearish: int, total: int) -> list[bool]:
    """`total` items with `bearish` of them spread evenly: every prefix is at most as
    bearish as the whole window."""
    return [(i + 1) * bearish // total > i * bearish // total for i in range(total)]


def run(
    stream: Sequence[tuple[int, int]], rule: RuleSettings = RULE, checks: int = 3
) -> list[Kind]:
    """Feed windows of (bearish, total) items in order, the way the worker does: each window
    is evaluated `checks` times as it fills, the sweep runs after each evaluation, and a last
    sweep runs long after the stream ended. Returns the notifications."""
    history: dict[datetime, WindowCounts] = {}
    state: AlertState | None = None
    sent: list[Kind] = []
    for i, (bearish, total) in enumerate(stream):
        key = WindowKey(rule.window_seconds, T0 + i * rule.window, "ticker", "ACME")
        items = spread(bearish, total)
        for check in range(1, checks + 1):
            seen = items[: len(items) * check // checks]
            now = key.window_start + rule.window * check / checks - timedelta(seconds=1)
            if seen:
                counts = WindowCounts(n_bearish=sum(seen), n_neutral=len(seen) - sum(seen))
                history[key.window_start] = counts
                baseline = baseline_of(
                    history, key.window_start, rule.window, rule.baseline_windows
                )
                decision = observe(
                    state, assess(rule, counts, baseline), key, now, rule.repeat_interval
                )
                state = decision.after
                sent += [decision.notify] if decision.notify else []
            if state is not None:
                decision = sweep(state, now, rule.quiet_period)
                state = decision.after
                sent += [decision.notify] if decision.notify else []
    if state is not None:
        final = sweep(state, T0 + len(stream) * rule.window + timedelta(days=1), rule.quiet_period)
        sent += [final.notify] if final.notify else []
    return sent


volumes = st.integers(min_value=1, max_value=60)


@st.composite
def steady(draw: Any, max_share: float = 1.0) -> tuple[int, int]:
    total = draw(volumes)
    return draw(st.integers(0, int(total * max_share))), total


@given(window=steady(max_share=0.29), length=st.integers(1, 40))
def test_a_steady_stream_never_fires(window: tuple[int, int], length: int) -> None:
    assert run([window] * length) == []


@given(window=steady(), length=st.integers(1, 30))
def test_a_steady_stream_never_fires_once_it_has_a_history(
    window: tuple[int, int], length: int
) -> None:
    warm_up = [window] * RULE.baseline_windows
    alerts_while_warming = run(warm_up)
    assert run(warm_up + [window] * length) == alerts_while_warming


@given(calm=steady(max_share=0.2), burst=st.integers(20, 80), after=st.integers(1, 20))
def test_a_burst_fires_once_and_recovery_resolves(
    calm: tuple[int, int], burst: int, after: int
) -> None:
    bearish, total = calm
    stream = [calm] * 12 + [(bearish + burst, total + burst)] + [calm] * after
    sent = run(stream, checks=4)
    assert sent[0] is Kind.FIRING and sent[-1] is Kind.RESOLVED
    assert sent.count(Kind.FIRING) == 1 and sent.count(Kind.RESOLVED) == 1
    assert sent.count(Kind.REPEAT) <= len(RULE.thresholds) - 1  # only severity rises


@st.composite
def quiet(draw: Any) -> tuple[int, int]:
    total = draw(st.integers(1, RULE.min_volume - 1))
    return draw(st.integers(0, total)), total


@given(stream=st.lists(quiet(), min_size=1, max_size=40))
def test_a_burst_below_the_minimum_volume_never_fires(stream: list[tuple[int, int]]) -> None:
    """Even windows of nothing but bearish items, below `min_volume`."""
    assert run(stream) == []


@given(stream=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=40))
def test_notifications_are_always_well_formed(stream: list[tuple[int, int]]) -> None:
    """Whatever the stream: firing, then repeats, then resolved; never two alerts at once."""
    windows = [(bearish, bearish + other) for bearish, other in stream if bearish + other]
    firing = False
    for kind in run(windows):
        assert (kind is Kind.FIRING) is not firing, kind
        firing = kind is not Kind.RESOLVED
    assert not firing
