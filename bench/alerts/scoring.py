"""Scoring a run against the injected episodes, and the printed table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bench.alerts.delivery import Run
from bench.alerts.stream import HOURS, START, Episode, Stream


@dataclass(slots=True)
class Score:
    incidents: int
    notices: int
    messages: int
    history: int
    recall: float
    false_per_6h: float
    delay_event_min: list[float]
    delay_processing_s: list[float]
    missed: list[str]
    detected: list[str]
    false: list[str]
    identity: set[tuple[str, str, str, datetime]]
    """(rule, dimension, key, episode start) of every incident."""
    spans: list[tuple[str, str, datetime, datetime]]
    """(rule, key, episode start, episode end) of every incident."""


def _attributed(incident: dict[str, Any], ep: Episode) -> bool:
    near = incident["episode_start"] < ep.end + timedelta(minutes=30) and incident[
        "anomalous_until"
    ] > ep.start - timedelta(minutes=10)
    if not near:
        return False
    dimension, key = incident["dimension"], incident["key"]
    return (
        dimension == "all"
        or (dimension == "ticker" and key in ep.tickers)
        or (dimension == "topic" and key in ep.topics)
    )


def score(result: Run, stream: Stream) -> Score:
    incidents = result.incidents
    missed, detected, delays_event, delays_processing = [], [], [], []
    for ep in stream.episodes:
        rule, key = ep.target
        found = [
            i for i in incidents if i["rule"] == rule and i["key"] == key and _attributed(i, ep)
        ]
        if not found:
            missed.append(ep.name)
            continue
        first = min(found, key=lambda i: i["started_at"])
        detected_s = (first["started_at"] - START).total_seconds()
        seen = [newest for at, newest in result.progress if at <= detected_s]
        event_progress = max(seen) if seen else START
        delays_event.append((event_progress - ep.start).total_seconds() / 60)
        delays_processing.append(detected_s - result.first_arrival.get(ep.name, detected_s))
        others = sorted(f"{i['rule']}/{i['key']}" for i in incidents if _attributed(i, ep))
        detected.append(
            f"{ep.name}: event +{delays_event[-1]:.1f} min, processing "
            f"+{delays_processing[-1]:.0f} s; incidents: {', '.join(others)}"
        )
    false = [
        f"{i['rule']} {i['key']} {i['episode_start']:%H:%M}"
        for i in incidents
        if not any(_attributed(i, ep) for ep in stream.episodes)
    ]
    return Score(
        incidents=len(incidents),
        notices=len(result.notices),
        messages=result.messages,
        history=sum(1 for i in incidents if i["suppressed_reason"]),
        recall=1 - len(missed) / len(stream.episodes),
        false_per_6h=len(false) * 6 / HOURS,
        delay_event_min=delays_event,
        delay_processing_s=delays_processing,
        missed=missed,
        detected=detected,
        false=false,
        identity={(i["rule"], i["dimension"], i["key"], i["episode_start"]) for i in incidents},
        spans=sorted(
            (i["rule"], i["key"], i["episode_start"], i["anomalous_until"]) for i in incidents
        ),
    )


def same_incidents(a: Score, b: Score) -> bool:
    """One-to-one: each incident of `a` has one of `b` on the same rule and key whose
    episode overlaps it in event time, and no more."""
    if len(a.spans) != len(b.spans):
        return False
    unmatched = list(b.spans)
    for rule, key, start, end in a.spans:
        match = next(
            (o for o in unmatched if o[:2] == (rule, key) and o[2] < end and start < o[3]), None
        )
        if match is None:
            return False
        unmatched.remove(match)
    return True


def _range(values: list[float], unit: str) -> str:
    return f"{min(values):.1f}-{max(values):.1f} {unit}" if values else "-"


def _same(first: Score, other: Score) -> str:
    if other.identity == first.identity:
        return "yes (exactly)"
    return "yes (starts differ)" if same_incidents(first, other) else "NO"


def report(scores: dict[str, Score]) -> str:
    first = next(iter(scores.values()))
    reference = first.identity
    lines = [
        f"{'delivery':42} {'incid.':>6} {'notices':>7} {'msgs':>5} {'history':>7} "
        f"{'recall':>6} {'false/6h':>8}  {'delay (event)':>14}  {'delay (processing)':>18}  "
        "same incidents as a",
    ]
    for name, s in scores.items():
        lines.append(
            f"{name:42} {s.incidents:>6} {s.notices:>7} {s.messages:>5} {s.history:>7} "
            f"{s.recall:>6.0%} {s.false_per_6h:>8.1f}  {_range(s.delay_event_min, 'min'):>14}  "
            f"{_range(s.delay_processing_s, 's'):>18}  {_same(first, s)}"
        )
        lines += [f"    missed: {m}" for m in s.missed] + [f"    false: {f}" for f in s.false]
        lines += [f"    detected: {d}" for d in s.detected]
        for rule, _, key, start in sorted(s.identity ^ reference):
            side = "only here" if (rule, _, key, start) in s.identity else "only in a"
            lines.append(f"    episode start {side}: {rule} {key} from {start:%H:%M}")
    return "\n".join(lines)
