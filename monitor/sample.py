"""A realistic synthetic news feed, generated (not shipped), for demos, tests and benchmarks.

Headlines are built from templates in the style of financial newswires, with cashtags,
companies and figures, spread over a few hours. One ticker goes through a negative episode
(a burst of bearish news), so the demo shows a trend turning and an alert firing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

COMPANIES: dict[str, str] = {
    "AAPL": "Apple",
    "MSFT": "Microsoft",
    "NVDA": "Nvidia",
    "AMZN": "Amazon",
    "TSLA": "Tesla",
    "JPM": "JPMorgan",
    "XOM": "Exxon Mobil",
    "PFE": "Pfizer",
    "BA": "Boeing",
    "KO": "Coca-Cola",
    "NFLX": "Netflix",
    "INTC": "Intel",
    "DIS": "Disney",
    "GS": "Goldman Sachs",
    "WMT": "Walmart",
}
EPISODE_TICKER = "BA"

BULLISH = [
    "${t} shares jump {pct}% after {name} beats quarterly earnings estimates",
    "{name} raises full-year guidance as demand stays strong ${t}",
    "${t} upgraded to buy at {bank}, price target raised to ${price}",
    "{name} announces ${bn} billion share buyback, stock climbs",
    "${t} hits record high as {name} revenue tops forecasts",
    "{name} wins major contract, shares rise {pct}% ${t}",
]
BEARISH = [
    "${t} shares plunge {pct}% after {name} misses earnings and cuts outlook",
    "{name} downgraded to sell at {bank} on weakening demand ${t}",
    "${t} tumbles as regulators open probe into {name}",
    "{name} warns of lower profit, stock slides {pct}% ${t}",
    "${t} falls after {name} recalls products over safety concerns",
    "{name} faces lawsuit over accounting practices, shares drop ${t}",
]
NEUTRAL = [
    "{name} to present at {bank} technology conference next week ${t}",
    "{name} names new chief financial officer ${t}",
    "${t} {name} schedules third-quarter earnings call for {day}",
    "{name} declares quarterly dividend of ${cents} per share ${t}",
    "{name} files annual report with the SEC ${t}",
]
MACRO = [
    "Fed holds rates steady, signals patience on future cuts",
    "Treasury yields edge higher ahead of inflation data",
    "Oil prices rise as OPEC+ extends output cuts",
    "Dollar steadies against the euro after jobs report",
    "European stocks open flat as investors await ECB decision",
    "US weekly jobless claims fall more than expected",
]
# Every episode headline carries a figure, so the burst is many stories (as a real crisis
# is), not a few headlines repeated: rules that count stories see it too.
EPISODE = [
    "${t} plunges {pct}% after {name} grounds fleet following safety incident",
    "{name} shares crash {pct}% as FAA orders emergency inspections ${t}",
    "${t} tumbles {pct}% as airlines cancel {name} orders after crash",
    "{name} downgraded to sell at {bank} amid safety crisis, stock sinks {pct}% ${t}",
    "${t} slides {pct}% as {name} faces criminal probe over safety lapses",
    "{name} halts deliveries, shares fall {pct}% to multi-year low ${t}",
]
BANKS = ["Morgan Stanley", "Goldman Sachs", "Barclays", "UBS", "Citi", "Jefferies"]
SOURCES = ["newswire", "marketdesk", "finsocial"]


@dataclass(frozen=True, slots=True)
class SampleSpec:
    """What to generate: `hours` of news ending at `end`, about `per_hour` items an hour."""

    end: datetime
    hours: float = 6.0
    per_hour: int = 120
    seed: int = 7
    episode_start_fraction: float = 0.7
    episode_minutes: int = 15
    episode_items: int = 40


def _fill(template: str, ticker: str, rng: random.Random) -> str:
    return template.format(
        t=ticker,
        name=COMPANIES[ticker],
        pct=rng.randrange(2, 30),
        bank=rng.choice(BANKS),
        price=rng.randrange(40, 900),
        bn=rng.randrange(1, 40),
        cents=f"0.{rng.randrange(10, 99)}",
        day=rng.choice(["Tuesday", "Wednesday", "Thursday"]),
    )


def generate(spec: SampleSpec) -> Iterator[dict[str, object]]:
    """Yield news documents in the input contract, in publication order."""
    rng = random.Random(spec.seed)
    start = spec.end - timedelta(hours=spec.hours)
    total_seconds = spec.hours * 3600
    n_background = int(spec.hours * spec.per_hour)
    docs: list[tuple[datetime, str]] = []
    tickers = [t for t in COMPANIES if t != EPISODE_TICKER]
    for _ in range(n_background):
        at = start + timedelta(seconds=rng.uniform(0, total_seconds))
        roll = rng.random()
        if roll < 0.15:
            docs.append((at, rng.choice(MACRO)))
            continue
        ticker = rng.choice([*tickers, EPISODE_TICKER])
        pool = BULLISH if roll < 0.40 else BEARISH if roll < 0.55 else NEUTRAL
        docs.append((at, _fill(rng.choice(pool), ticker, rng)))
    episode_at = start + timedelta(seconds=total_seconds * spec.episode_start_fraction)
    for _ in range(spec.episode_items):
        at = episode_at + timedelta(seconds=rng.uniform(0, spec.episode_minutes * 60))
        docs.append((at, _fill(rng.choice(EPISODE), EPISODE_TICKER, rng)))
    docs.sort(key=lambda d: d[0])
    for i, (at, headline) in enumerate(docs):
        yield {
            "id": f"sample-{spec.seed}-{i:06d}",
            "published_at": at.astimezone(UTC).isoformat(timespec="seconds"),
            "headline": headline,
            "source": rng.choice(SOURCES),
            "url": f"https://news.example.com/{spec.seed}/{i}",
            "lang": "en",
        }


def write_jsonl(path: str, spec: SampleSpec) -> int:
    """Write the sample feed to `path` as JSON lines; returns the number of items."""
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for doc in generate(spec):
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_rss(path: str, spec: SampleSpec, title: str = "finmon sample feed") -> int:
    """Write the sample feed as an RSS 2.0 file (for `finmon ingest` demos); returns the
    number of items."""
    from email.utils import format_datetime
    from xml.sax.saxutils import escape

    items = []
    for doc in generate(spec):
        published = datetime.fromisoformat(str(doc["published_at"]))
        items.append(
            "<item>"
            f'<guid isPermaLink="false">{escape(str(doc["id"]))}</guid>'
            f"<title>{escape(str(doc['headline']))}</title>"
            f"<link>{escape(str(doc['url']))}</link>"
            f"<pubDate>{format_datetime(published)}</pubDate>"
            "</item>"
        )
    with open(path, "w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>{escape(title)}</title><link>https://news.example.com/</link>"
            f"<language>en</language>{''.join(reversed(items))}</channel></rss>\n"
        )
    return len(items)
