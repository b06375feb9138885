"""`python -m bench.alerts`: alert quality on labelled streams, with the shipped rules.

A seeded generator writes 6 hours of background news on 24 tickers in four sectors and
several topics, with negative episodes of different sizes and shapes injected (one ticker,
one sector, the whole market, a slow build-up on one ticker) and background noise that must
not fire (a busy but ordinary news flurry, a few bearish items on a quiet ticker). The same
stream is delivered four ways:

    a  in order, live: each item arrives shortly after it was published
    b  shuffled: the whole stream as one backlog after an outage, in random order
    c  4 partitions drained at different speeds (1, 1/2, 1/4, 1/8), each in order
    d  in order, live, then the whole stream delivered again (redelivery)

through the worker's own code path: `Runtime.prepare`/`commit` (decode, store, the window
counts, the watermark fed per partition) and the `AlertService` (judging, incidents,
grouping, the outbox, the log channel), on SQLite, on a simulated clock. The classifier is a
double that returns the labels the generator set, so the figures measure the alerting, not
the model.

Printed per delivery: incidents, notices and messages, recall of the injected episodes,
false incidents per 6 h of background, detection delay in event time and in processing
time, and whether the incident set equals (a)'s. `--chart` draws one episode: its window
scores, the baseline, the threshold and the incident span (docs/alerts.md).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from alerts.channels import build_channels
from alerts.detection import assess, baseline_of
from alerts.models import AlertDeliveryRow, AlertNoticeRow, AlertRow
from alerts.rules import AlertSettings
from alerts.service import AlertService
from alerts.sources import read_windows
from monitor.db.engine import make_engine, upgrade
from monitor.model.interface import Classification, ModelInput
from monitor.pipeline_types import Origin, RawMessage
from monitor.runtime import Runtime
from monitor.settings import Settings, load_settings

HOURS = 6
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
END = START + timedelta(hours=HOURS)
SECTORS: dict[str, tuple[str, list[str]]] = {
    "tech": ("Stock Movement", ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META"]),
    "banks": ("Financials", ["JPM", "GS", "BAC", "C", "WFC", "MS"]),
    "energy": ("Energy | Oil", ["XOM", "CVX", "COP", "SLB", "OXY", "EOG"]),
    "health": ("Stock Commentary", ["PFE", "MRK", "JNJ", "ABBV", "LLY", "BMY"]),
}
TICKERS = [t for _, tickers in SECTORS.values() for t in tickers]
TOPICS = ["Stock Movement", "Earnings", "M&A | Investments", "Macro", "Markets", "Analyst Update"]
BACKGROUND = {"bearish": 0.15, "neutral": 0.55, "bullish": 0.30}
BATCH = 128
STEP_S = 5.0
"""Live deliveries advance the simulated clock in steps of this many seconds."""
BACKLOG_RATE = 300.0
"""Items per second a backlog drains at (about the worker's speed on 2 CPU cores)."""


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    at: datetime
    tickers: tuple[str, ...]
    topic: str
    sentiment: str

    def message(self, partition: int) -> RawMessage:
        doc = {
            "id": self.id,
            "published_at": self.at.isoformat(),
            "headline": f"{' '.join('$' + t for t in self.tickers)} news {self.id}",
            "tickers": list(self.tickers),
        }
        return RawMessage(json.dumps(doc).encode(), Origin("bench", partition, 0))


@dataclass(frozen=True, slots=True)
class Episode:
    name: str
    start: datetime
    end: datetime
    tickers: frozenset[str]
    topics: frozenset[str]
    target: tuple[str, str]
    """The (rule, key) that must detect it."""


@dataclass(slots=True)
class Stream:
    items: list[Item] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)

    def add(self, at: datetime, tickers: Sequence[str], topic: str, sentiment: str) -> None:
        self.items.append(Item(f"i{len(self.items)}", at, tuple(tickers), topic, sentiment))


def _sentiment(rng: random.Random, mix: dict[str, float]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def generate(seed: int) -> Stream:
    """The labelled stream: background, noise and four episodes."""
    rng = random.Random(seed)
    stream = Stream()
    weights = [1.0 / (1 + i % 6) for i in range(len(TICKERS))]  # a few busy names per sector
    sector_of = {t: s for s, (_, tickers) in SECTORS.items() for t in tickers}
    at = START
    while at < END:  # about 7 items a minute: ~2,500 in 6 h
        at += timedelta(seconds=rng.expovariate(7 / 60))
        if rng.random() < 0.15:
            stream.add(at, (), rng.choice(["Macro", "Markets"]), _sentiment(rng, BACKGROUND))
            continue
        ticker = rng.choices(TICKERS, weights=weights)[0]
        sector_topic = SECTORS[sector_of[ticker]][0]
        topic = sector_topic if rng.random() < 0.4 else rng.choice(TOPICS)
        stream.add(at, (ticker,), topic, _sentiment(rng, BACKGROUND))
    # noise that must not fire: an ordinary flurry on one name, a few bearish on a quiet one
    for k in range(18):
        stream.add(
            START + timedelta(minutes=50, seconds=15 * k),
            ("NVDA",),
            "Earnings",
            _sentiment(rng, BACKGROUND),
        )
    for k in range(3):
        stream.add(
            START + timedelta(minutes=200, seconds=40 * k), ("EOG",), "Energy | Oil", "bearish"
        )

    def episode(
        name: str,
        start_min: float,
        minutes: float,
        target: tuple[str, str],
        items: list[tuple[tuple[str, ...], str]],
    ) -> None:
        start = START + timedelta(minutes=start_min)
        for k, (tickers, topic) in enumerate(items):
            offset = timedelta(minutes=minutes) * (k + rng.random()) / len(items)
            stream.add(start + offset, tickers, topic, "bearish")
        stream.episodes.append(
            Episode(
                name,
                start,
                start + timedelta(minutes=minutes),
                frozenset(t for tickers, _ in items for t in tickers),
                frozenset(topic for _, topic in items),
                target,
            )
        )

    episode(
        "ticker-only: 40 bearish on AAPL in 15 min",
        90,
        15,
        ("ticker-negative-spike", "AAPL"),
        [(("AAPL",), "Stock Movement")] * 40,
    )
    banks = SECTORS["banks"][1]
    episode(
        "sector-wide: 45 bearish on 6 banks in 30 min",
        165,
        30,
        ("topic-negative-spike", "Financials"),
        [((banks[k % 6],), "Financials") for k in range(45)],
    )
    episode(
        "market-wide: 90 bearish on every name in 15 min",
        240,
        15,
        ("market-negative-spike", "*"),
        [((TICKERS[k % len(TICKERS)],), TOPICS[k % len(TOPICS)]) for k in range(90)],
    )
    build_up = [
        ((("PFE",), "Stock Commentary"), minute)
        for minute in range(60)
        for _ in range(minute // 12)
    ]  # 0, 1, ... 4 bearish a minute
    start = START + timedelta(minutes=300)
    for (tickers, topic), minute in build_up:
        stream.add(
            start + timedelta(minutes=minute, seconds=rng.uniform(0, 59)), tickers, topic, "bearish"
        )
    stream.episodes.append(
        Episode(
            "slow build-up: PFE, 0 to 4 bearish a minute over 1 h",
            start,
            start + timedelta(minutes=60),
            frozenset({"PFE"}),
            frozenset({"Stock Commentary"}),
            ("ticker-negative-spike", "PFE"),
        )
    )
    stream.items.sort(key=lambda item: item.at)
    return stream


class LabelClassifier:
    """The classifier double: returns the labels the generator set for each headline."""

    model_version = "bench-labels-1"

    def __init__(self, items: Sequence[Item]) -> None:
        self.labels = {item.id: (item.topic, item.sentiment) for item in items}

    def classify(self, inputs: Sequence[ModelInput]) -> list[Classification]:
        out = []
        for model_input in inputs:
            topic, sentiment = self.labels[model_input.headline.rsplit(" ", 1)[-1]]
            score = {"bearish": -0.8, "neutral": 0.0, "bullish": 0.7}[sentiment]
            out.append(
                Classification(topic, 0.9, sentiment, score, {sentiment: 0.9}, self.model_version)
            )
        return out


# --- deliveries -------------------------------------------------------------------------


@dataclass(slots=True)
class Arrival:
    """An item arriving at processing time `at` (seconds since the run began) on a partition."""

    at: float
    partition: int
    item: Item


def live(stream: Stream, rng: random.Random) -> list[Arrival]:
    """Each item a few seconds after it was published; partition by id, as Kafka keys do."""
    return sorted(
        (
            Arrival((i.at - START).total_seconds() + rng.uniform(2, 20), hash(i.id) % 4, i)
            for i in stream.items
        ),
        key=lambda a: a.at,
    )


def backlog(
    items: Sequence[Item],
    partitions: Sequence[list[Item]] | None,
    begin: float,
    speeds: Sequence[float] = (1.0,),
) -> list[Arrival]:
    """Items drained from a backlog starting at `begin`: each partition in its own order at
    BACKLOG_RATE * its speed, the partitions interleaved by time."""
    parts = partitions or [list(items)]
    arrivals = []
    for p, (part, speed) in enumerate(zip(parts, speeds, strict=True)):
        rate = BACKLOG_RATE * speed / len(parts)
        arrivals += [Arrival(begin + k / rate, p, item) for k, item in enumerate(part)]
    return sorted(arrivals, key=lambda a: a.at)


def deliveries(stream: Stream, seed: int) -> dict[str, list[Arrival]]:
    rng = random.Random(seed)
    outage_end = (END - START).total_seconds() + 60  # the backlog starts after the stream
    shuffled = list(stream.items)
    rng.shuffle(shuffled)
    by_partition: list[list[Item]] = [[] for _ in range(4)]
    for item in stream.items:
        by_partition[hash(item.id) % 4].append(item)
    first = live(stream, rng)
    again = backlog(stream.items, None, first[-1].at + 600)
    return {
        "a in order (live)": first,
        "b shuffled backlog": backlog(
            shuffled, [shuffled[i::4] for i in range(4)], outage_end, (1, 1, 1, 1)
        ),
        "c 4 partitions, speeds 1, 1/2, 1/4, 1/8": backlog(
            stream.items, by_partition, outage_end, (1, 0.5, 0.25, 0.125)
        ),
        "d live, then redelivered": first + again,
    }


class SimClock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds

    @property
    def wall(self) -> datetime:
        return START + timedelta(seconds=self.seconds)


@dataclass(slots=True)
class Run:
    incidents: list[dict[str, Any]]
    notices: list[dict[str, Any]]
    messages: int
    progress: list[tuple[float, datetime]]
    """(processing time, newest published_at delivered so far) after each batch."""
    first_arrival: dict[str, float]


def run(
    settings: Settings,
    alert_settings: AlertSettings,
    arrivals: list[Arrival],
    stream: Stream,
    folder: Path,
) -> Run:
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    clock = SimClock()
    channels = build_channels(alert_settings, settings.resolve, {})
    service = AlertService(
        alert_settings, engine, channels, monotonic=clock, wall=lambda: clock.wall
    )
    runtime = Runtime(settings, engine, LabelClassifier(stream.items), service)
    progress: list[tuple[float, datetime]] = []
    first_arrival: dict[str, float] = {}
    episode_items = _episode_items(stream)
    newest = START
    pending: list[Arrival] = []
    index, horizon = 0, arrivals[-1].at + 3 * 3600  # then let the quiet stream resolve
    next_sweep = next_delivery = 0.0
    while clock.seconds < horizon:
        while index < len(arrivals) and arrivals[index].at <= clock.seconds:
            pending.append(arrivals[index])
            index += 1
        if pending:
            batch, pending = pending[:BATCH], pending[BATCH:]
            runtime.handle([a.item.message(a.partition) for a in batch])
            clock.seconds += len(batch) / BACKLOG_RATE  # the batch's processing time
            for a in batch:
                newest = max(newest, a.item.at)
                for name in episode_items.get(a.item.id, ()):
                    first_arrival.setdefault(name, a.at)
            progress.append((clock.seconds, newest))
        else:
            upcoming = arrivals[index].at if index < len(arrivals) else horizon
            clock.seconds = min(max(upcoming, clock.seconds), clock.seconds + STEP_S)
        service.evaluate_due(clock.wall)  # paced to evaluate_every by the service itself
        if clock.seconds >= next_sweep:
            service.sweep(clock.wall)
            next_sweep = clock.seconds + 30
        if clock.seconds >= next_delivery:
            service.deliver_pending(clock.wall)
            next_delivery = clock.seconds + 2
    service.deliver_pending_until_idle(clock.wall)
    with engine.connect() as conn:
        incidents = [dict(r._mapping) for r in conn.execute(select(AlertRow.__table__))]
        notices = [dict(r._mapping) for r in conn.execute(select(AlertNoticeRow.__table__))]
        messages = len(conn.execute(select(AlertDeliveryRow.__table__.c.id)).all())
    engine.dispose()
    return Run(incidents, notices, messages, progress, first_arrival)


def _episode_items(stream: Stream) -> dict[str, list[str]]:
    """Item id -> the episodes it belongs to (bearish items of an episode's keys in its span)."""
    out: dict[str, list[str]] = {}
    for item in stream.items:
        for ep in stream.episodes:
            if (
                ep.start <= item.at < ep.end
                and item.sentiment == "bearish"
                and (set(item.tickers) & ep.tickers)
            ):
                out.setdefault(item.id, []).append(ep.name)
    return out


# --- scoring ----------------------------------------------------------------------------


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


# --- the chart --------------------------------------------------------------------------


def chart(
    settings: Settings,
    alert_settings: AlertSettings,
    arrivals: list[Arrival],
    stream: Stream,
    folder: Path,
    path: Path,
) -> None:
    """One episode (the ticker-only one): window scores, baseline share, threshold, incident."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result_dir = folder / "chart"
    result_dir.mkdir(exist_ok=True)
    result = run(settings, alert_settings, arrivals, stream, result_dir)
    ep = stream.episodes[0]
    rule_name, key = ep.target
    rule = next(r for r in alert_settings.rules if r.name == rule_name)
    engine = make_engine(f"sqlite:///{result_dir / 'bench.sqlite3'}")
    with engine.connect() as conn:
        history = read_windows(conn, rule.dimension, rule.window_seconds, [key], START, END)[key]
    engine.dispose()
    starts = [ep.start - timedelta(hours=1) + rule.window * i for i in range(24)]
    scores, shares, baselines = [], [], []
    from monitor.windows import WindowCounts

    for start in starts:
        counts = history.get(start, WindowCounts())
        figures = assess(
            rule, counts, baseline_of(history, start, rule.window, rule.baseline_windows)
        ).figures
        scores.append(figures.score if counts.n_total >= rule.min_volume else float("nan"))
        shares.append(figures.negative_share if counts.n_total else float("nan"))
        baselines.append(figures.baseline_share)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    x = [s.replace(tzinfo=None) + rule.window / 2 for s in starts]
    top.bar(x, scores, width=rule.window * 0.9, color="#4c72b0", label="window score (z)")
    top.axhline(
        rule.thresholds["warning"],
        color="#d62728",
        linestyle="--",
        label=f"warning threshold ({rule.thresholds['warning']})",
    )
    top.set_ylabel("score")
    bottom.plot(x, shares, "o-", label="bearish share of the window")
    bottom.plot(x, baselines, "-", color="grey", label="baseline share (prior-smoothed)")
    bottom.set_ylabel("share")
    for incident in result.incidents:
        if incident["rule"] == rule_name and incident["key"] == key:
            for ax in (top, bottom):
                ax.axvspan(
                    incident["episode_start"].replace(tzinfo=None),
                    incident["anomalous_until"].replace(tzinfo=None),
                    color="#ff7f0e",
                    alpha=0.2,
                    label="incident (event time)",
                )
            detected = START + timedelta(seconds=(incident["started_at"] - START).total_seconds())
            top.axvline(
                detected.replace(tzinfo=None), color="#ff7f0e", label="detected (processing time)"
            )
    for ax in (top, bottom):
        ax.axvspan(
            ep.start.replace(tzinfo=None),
            ep.end.replace(tzinfo=None),
            fill=False,
            hatch="//",
            edgecolor="black",
            linewidth=0,
            label="injected episode",
        )
        ax.legend(loc="upper left", fontsize="small")
    top.set_title(f"{rule_name} on {key}: {ep.name} (delivery a, in order)")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def shipped_alert_settings(
    settings: Settings, folder: Path, overrides: dict[str, Any]
) -> AlertSettings:
    """The config's `[alerts]` (rules, routes, timing), its channels replaced by one log
    file in `folder` so nothing leaves the machine."""
    raw = dict(settings.alerts)
    raw["channels"] = {"log": {"type": "log", "path": str(folder / "alerts.log")}}
    raw["routes"] = [
        {**route, "channels": ["log"]} for route in raw.get("routes", [{"channels": ["log"]}])
    ]
    return AlertSettings.model_validate({**raw, **overrides})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.alerts", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="config.toml (default: the repo's)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chart", type=Path, default=None, help="write the episode chart here")
    parser.add_argument(
        "--notify-max-age",
        default=None,
        help="override alerts.notify_max_age (e.g. 7d: deliver backlogs too)",
    )
    args = parser.parse_args(argv)
    stream = generate(args.seed)
    plans = deliveries(stream, args.seed)
    overrides = {"notify_max_age": args.notify_max_age} if args.notify_max_age else {}
    print(
        f"stream: {len(stream.items)} items over {HOURS} h, {len(TICKERS)} tickers, "
        f"{len(stream.episodes)} episodes; shipped rules from the config"
    )
    scores: dict[str, Score] = {}
    with tempfile.TemporaryDirectory(prefix="finmon-bench-alerts-") as tmp:
        folder = Path(tmp)
        settings = load_settings(args.config, database={"url": f"sqlite:///{folder}/x.sqlite3"})
        for name, arrivals in plans.items():
            sub = folder / str(len(scores))
            sub.mkdir()
            alert_settings = shipped_alert_settings(settings, sub, overrides)
            print(f"delivering {name} ...", flush=True)
            scores[name] = score(run(settings, alert_settings, arrivals, stream, sub), stream)
        print(report(scores))
        if args.chart:
            chart(
                settings,
                shipped_alert_settings(settings, folder, overrides),
                plans["a in order (live)"],
                stream,
                folder,
                args.chart,
            )
            print(f"chart: {args.chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
