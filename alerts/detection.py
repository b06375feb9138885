"""Negative-spike detection: one window against the calm windows before it, of the same key
(the preceding windows less those that stood out themselves: :func:`baseline_of`). Pure.

Two scores, both built to be honest about small counts:

- share: a two-proportion z-test of the window's bearish share against the baseline's pooled
  share. The baseline starts from a prior (`prior_share` worth `prior_weight` items), so a key
  with no history has a sensible baseline, and the variance includes both the window's and
  the baseline's size, so a handful of items can never produce a large z.
- count: the bearish count against the median of the baseline's counts, scaled by the MAD
  (robust to a past spike in the baseline) and never below the Poisson spread sqrt(median).

A window fires only with enough volume (`min_volume`, `min_bearish`) and, for share metrics,
a real effect (`min_share_increase`), whatever the z-score says.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from alerts.rules import RuleSettings, Severity
from monitor.windows import WindowCounts

_MAD_TO_SIGMA = 1.4826


class Status(StrEnum):
    FIRING = "firing"
    """Anomalous enough to open (or escalate) an alert."""
    ELEVATED = "elevated"
    """Not enough to open an alert, but keeps a firing one alive (hysteresis)."""
    NORMAL = "normal"
    BELOW_MINIMUM = "below_minimum"
    """Too few items (or bearish items) to judge."""


@dataclass(frozen=True, slots=True)
class Figures:
    """The numbers behind a verdict, stored with the alert and sent in notifications."""

    n_total: int
    n_bearish: int
    n_neutral: int
    n_bullish: int
    mean_score: float
    negative_share: float
    baseline_windows: int
    baseline_total: int
    baseline_share: float
    """The prior-smoothed pooled share the test compares against."""
    baseline_bearish_median: float
    z_share: float
    z_count: float
    score: float

    def as_dict(self) -> dict[str, float | int]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class Assessment:
    status: Status
    severity: Severity | None
    figures: Figures


def smoothed_share(rule: RuleSettings, baseline: Sequence[WindowCounts]) -> tuple[float, float]:
    """The prior-smoothed pooled bearish share of the baseline, and its weight in items."""
    weight = sum(c.n_total for c in baseline) + rule.prior_weight
    bearish = sum(c.n_bearish for c in baseline) + rule.prior_share * rule.prior_weight
    return bearish / weight, weight


def share_z(current: WindowCounts, p0: float, baseline_weight: float) -> float:
    """Two-proportion z of the current bearish share over the baseline share `p0`."""
    if current.n_total == 0:
        return 0.0
    se = math.sqrt(p0 * (1 - p0) * (1 / current.n_total + 1 / baseline_weight))
    return (current.n_bearish / current.n_total - p0) / se


def count_z(current: WindowCounts, median: float, baseline: Sequence[WindowCounts]) -> float:
    """Robust z of the bearish count: (x - median) / max(1.4826 MAD, sqrt(median), 1)."""
    mad = statistics.median([abs(c.n_bearish - median) for c in baseline] or [0])
    scale = max(_MAD_TO_SIGMA * mad, math.sqrt(median), 1.0)
    return (current.n_bearish - median) / scale


def below_minimum(rule: RuleSettings, current: WindowCounts) -> bool:
    """Too few items, or too few bearish ones, for `rule` to judge the window at all."""
    return current.n_total < rule.min_volume or current.n_bearish < rule.min_bearish


def assess(
    rule: RuleSettings, current: WindowCounts, baseline: Sequence[WindowCounts]
) -> Assessment:
    """Judge `current` against `baseline` (the preceding windows, zero-filled) under `rule`."""
    p0, weight = smoothed_share(rule, baseline)
    median = float(statistics.median([c.n_bearish for c in baseline] or [0]))
    share = current.n_bearish / current.n_total if current.n_total else 0.0
    z_share, z_count = share_z(current, p0, weight), count_z(current, median, baseline)
    score = {
        "share": z_share,
        "count": z_count,
        "share_and_count": min(z_share, z_count),
        "share_or_count": max(z_share, z_count),
    }[rule.metric]
    figures = Figures(
        n_total=current.n_total,
        n_bearish=current.n_bearish,
        n_neutral=current.n_neutral,
        n_bullish=current.n_bullish,
        mean_score=current.mean_score,
        negative_share=share,
        baseline_windows=len(baseline),
        baseline_total=sum(c.n_total for c in baseline),
        baseline_share=p0,
        baseline_bearish_median=median,
        z_share=z_share,
        z_count=z_count,
        score=score,
    )
    if below_minimum(rule, current):
        return Assessment(Status.BELOW_MINIMUM, None, figures)
    severity = rule.severity_for(score)
    big_enough = rule.metric == "count" or share - p0 >= rule.min_share_increase
    if severity is not None and big_enough:
        return Assessment(Status.FIRING, severity, figures)
    if score >= rule.resolve_z:
        return Assessment(Status.ELEVATED, None, figures)
    return Assessment(Status.NORMAL, None, figures)


def _starts_before(window_start: datetime, size: timedelta, length: int) -> list[datetime]:
    """The starts of the `length` windows before `window_start`, oldest first."""
    return [window_start - size * i for i in range(length, 0, -1)]


def baseline_of(
    rule: RuleSettings, history: Mapping[datetime, WindowCounts], window_start: datetime
) -> list[WindowCounts]:
    """What the window at `window_start` is judged against: the `rule.baseline_windows`
    windows before it, oldest first, a missing window counted as empty, *less the windows
    that stood out themselves* (elevated or firing against their own preceding windows).

    A negative episode that builds over several windows must not raise the baseline of its
    own later windows: otherwise its first, smaller window (elevated, not yet firing) lifts
    the baseline share enough that the next, larger one no longer fires, and a spike that
    ramps up is never reported. Each preceding window is judged against its own
    `baseline_windows` predecessors as they are (one level, not recursively), so a key whose
    share has moved to a new level for a whole baseline is judged against that level:
    a lasting change is absorbed, a ramp is not. `history` must reach twice the baseline
    back for that judgement; what it lacks counts as empty."""

    def counts_at(start: datetime) -> WindowCounts:
        return history.get(start, WindowCounts())

    def stood_out(start: datetime) -> bool:
        counts = counts_at(start)
        if below_minimum(rule, counts):
            return False
        own = [counts_at(s) for s in _starts_before(start, rule.window, rule.baseline_windows)]
        return assess(rule, counts, own).status in (Status.FIRING, Status.ELEVATED)

    starts = _starts_before(window_start, rule.window, rule.baseline_windows)
    return [counts_at(start) for start in starts if not stood_out(start)]
