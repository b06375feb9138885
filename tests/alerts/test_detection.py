"""Spike detection: table-driven verdicts and properties of the scores."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.detection import (
    Status,
    assess,
    baseline_of,
    below_minimum,
    count_z,
    share_z,
    smoothed_share,
)
from alerts.rules import RuleSettings
from monitor.windows import WindowCounts


def make_rule(**overrides: Any) -> RuleSettings:
    fields = {"name": "r", "dimension": "ticker", "window": "5m", "min_volume": 5}
    return RuleSettings.model_validate(fields | overrides)


def w(bearish: int, other: int = 0) -> WindowCounts:
    return WindowCounts(n_bearish=bearish, n_neutral=other)


STEADY = [w(1, 4)] * 12  # 12 windows of 5 items, 20% bearish


@pytest.mark.parametrize(
    ("case", "rule", "current", "baseline", "status", "severity"),
    [
        ("one bearish item on a quiet key", {}, w(1), [], Status.BELOW_MINIMUM, None),
        ("too few bearish items", {"min_bearish": 3}, w(2, 8), [], Status.BELOW_MINIMUM, None),
        ("4 of 5 bearish, no history", {}, w(4, 1), [], Status.FIRING, "warning"),
        ("3 of 5 bearish, no history", {}, w(3, 2), [], Status.ELEVATED, None),
        ("all bearish against a calm baseline", {}, w(10), STEADY, Status.FIRING, "critical"),
        ("the baseline's own share", {}, w(3, 12), STEADY, Status.NORMAL, None),
        ("fewer bearish than usual", {}, w(0, 10), STEADY, Status.BELOW_MINIMUM, None),
        ("calmer than usual", {"min_bearish": 1}, w(1, 19), STEADY, Status.NORMAL, None),
        (
            "significant but too small a change in a huge window",
            {"dimension": "all", "min_share_increase": 0.15},
            w(500, 1500),
            [w(150, 850)] * 12,
            Status.ELEVATED,
            None,
        ),
        (
            "the same change with enough effect",
            {"dimension": "all", "min_share_increase": 0.15},
            w(700, 1300),
            [w(150, 850)] * 12,
            Status.FIRING,
            "critical",
        ),
        (
            "count metric: a jump in bearish volume at a steady share",
            {"metric": "count"},
            w(12, 48),
            [w(2, 8)] * 12,
            Status.FIRING,
            "critical",
        ),
        (
            "share and count: a volume jump alone is not enough",
            {"metric": "share_and_count"},
            w(12, 48),
            [w(2, 8)] * 12,
            Status.NORMAL,
            None,
        ),
        (
            "share or count: the volume jump is enough",
            {"metric": "share_or_count", "min_share_increase": 0.0},
            w(12, 48),
            [w(2, 8)] * 12,
            Status.FIRING,
            "critical",
        ),
    ],
)
def test_assess(
    case: str,
    rule: dict[str, Any],
    current: WindowCounts,
    baseline: list[WindowCounts],
    status: Status,
    severity: str | None,
) -> None:
    verdict = assess(make_rule(**rule), current, baseline)
    assert (verdict.status, verdict.severity) == (status, severity), (case, verdict.figures)


def test_figures_describe_the_window_and_its_baseline() -> None:
    figures = assess(make_rule(), w(4, 1), STEADY).figures
    assert (figures.n_total, figures.n_bearish, figures.negative_share) == (5, 4, 0.8)
    assert figures.baseline_windows == 12 and figures.baseline_total == 60
    assert figures.baseline_bearish_median == 1.0
    assert figures.baseline_share == pytest.approx((12 + 0.15 * 20) / (60 + 20))
    assert figures.score == figures.z_share
    assert set(figures.as_dict()) >= {"z_share", "z_count", "baseline_share", "negative_share"}


SIZE = timedelta(minutes=5)
NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def history_of(*windows: WindowCounts) -> dict[datetime, WindowCounts]:
    """Consecutive 5-minute windows, the last ending at NOON."""
    return {NOON - SIZE * (len(windows) - i): c for i, c in enumerate(windows)}


@pytest.mark.parametrize(
    ("case", "windows", "expected"),
    [
        (
            "missing windows count as empty, oldest first",
            {-1: w(1), -3: w(3)},
            [w(0), w(3), w(0), w(1)],
        ),
        (
            "a window that stood out (4 of 5 bearish) is left out",
            {**{-i: w(1, 9) for i in range(1, 9)}, -2: w(4, 1)},
            [w(1, 9), w(1, 9), w(1, 9)],
        ),
        (
            "so is one that fired",
            {**{-i: w(1, 9) for i in range(1, 9)}, -1: w(9, 1)},
            [w(1, 9), w(1, 9), w(1, 9)],
        ),
        (
            "a level held for a whole baseline is the baseline (absorbed, not left out)",
            {-i: w(8, 2) for i in range(1, 9)},
            [w(8, 2)] * 4,
        ),
        (
            "a window too small to judge is kept, whatever its share",
            {**{-i: w(1, 9) for i in range(1, 9)}, -1: w(2, 0)},
            [w(1, 9), w(1, 9), w(1, 9), w(2, 0)],
        ),
    ],
)
def test_baseline_of(
    case: str, windows: dict[int, WindowCounts], expected: list[WindowCounts]
) -> None:
    """The preceding `baseline_windows` (4 here), less those anomalous against their own."""
    rule = make_rule(baseline_windows=4)
    history = {NOON + SIZE * offset: counts for offset, counts in windows.items()}
    assert baseline_of(rule, history, NOON) == expected, case


def test_a_negative_episode_that_ramps_up_fires() -> None:
    """A key with 2 bearish in 5 now and then, then an episode over two windows: 4 of 5 and
    8 of 10 bearish. The first only looks elevated; left in the baseline it would lift the
    baseline share so far that the second, larger window did not fire either."""
    rule = make_rule(min_share_increase=0.3)
    quiet = [w(2, 3)] * 6 + [WindowCounts()] * 6
    history = history_of(*quiet, w(4, 1), w(8, 2))
    first, second = NOON - 2 * SIZE, NOON - SIZE
    assert assess(rule, history[first], baseline_of(rule, history, first)).status is (
        Status.ELEVATED
    )
    polluted = [*quiet[1:], w(4, 1)]
    assert assess(rule, history[second], polluted).status is Status.ELEVATED
    verdict = assess(rule, history[second], baseline_of(rule, history, second))
    assert verdict.status is Status.FIRING, verdict.figures


counts = st.integers(min_value=0, max_value=400)
windows = st.builds(w, counts, counts)


@given(current=windows, extra=st.integers(1, 50), baseline=st.lists(windows, max_size=24))
def test_more_bearish_items_never_lower_the_scores(
    current: WindowCounts, extra: int, baseline: list[WindowCounts]
) -> None:
    """Turning neutral items bearish (same volume) raises both z-scores or keeps them."""
    rule = make_rule()
    p0, weight = smoothed_share(rule, baseline)
    median = statistics.median([c.n_bearish for c in baseline] or [0])
    moved = min(extra, current.n_neutral)
    worse = w(current.n_bearish + moved, current.n_neutral - moved)
    assert share_z(worse, p0, weight) >= share_z(current, p0, weight)
    assert count_z(worse, median, baseline) >= count_z(current, median, baseline)


@given(current=windows, baseline=st.lists(windows, max_size=24))
def test_below_minimum_volume_never_fires(
    current: WindowCounts, baseline: list[WindowCounts]
) -> None:
    rule = make_rule(min_volume=50, min_bearish=10)
    verdict = assess(rule, current, baseline)
    if current.n_total < 50 or current.n_bearish < 10:
        assert verdict.status is Status.BELOW_MINIMUM
    # the alert service skips such windows of quiet keys without assessing them
    assert below_minimum(rule, current) == (verdict.status is Status.BELOW_MINIMUM)
    assert verdict.status is not Status.FIRING or verdict.severity is not None


@given(share=st.integers(0, 100), volume=st.integers(1, 300), history=st.integers(0, 24))
def test_a_window_like_its_baseline_is_never_firing(share: int, volume: int, history: int) -> None:
    bearish = volume * share // 100
    window = w(bearish, volume - bearish)
    verdict = assess(make_rule(baseline_windows=24), window, [window] * history)
    # From a cold start only shares within prior_share + min_share_increase are safe: a key
    # whose very first windows are mostly bearish is news.
    if history >= 6 or share / 100 < 0.15 + 0.15:
        assert verdict.status is not Status.FIRING, verdict.figures
