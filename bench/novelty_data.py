"""The labelled near-duplicate set story linking is measured on, built at run time.

Nothing here is committed data: pairs are generated from the SEntFiN headlines in
`../shared/data/sentfin` (or any CSV with `text` and `entity` columns) by the documented rules
below, with a fixed seed, so the same files always give the same pairs.

Positive pairs (the same story, as another outlet would re-title it): a headline and a copy
made by one to three of these rewrite rules, in a random order:

- `suffix`: an outlet attribution appended (" - Reuters", " | Bloomberg", ...)
- `prefix`: a wire tag put in front ("UPDATE 1-", "BREAKING: ", "(Reuters) - ")
- `reorder`: the two clauses around the first ", " / ": " / "; " swapped
- `synonym`: same-meaning words swapped (shares/stock, rises/gains, falls/drops, ...)
- `edit`: one word dropped (never the first, a number or a direction word) or a filler added
- `truncate`: the headline cut to three quarters of its words, with an ellipsis
- `case`: upper case or title case
- `entities`: HTML entities, as feeds escape them (&amp;, &#39;)

Negative pairs (different stories), from the hardest to the easiest:

- `same_entity`: two different SEntFiN headlines about the same entity (company, index ...)
- `flipped`: the headline with its direction word replaced by its opposite ("beats" ->
  "misses", "rises" -> "falls", "profit" -> "loss"), then re-titled by one rewrite rule, so
  everything but the direction looks like a copy
- `number`: a number in the headline changed, then re-titled the same way
- `negated`: " to " / " will " turned into " not to " / " will not ", then re-titled
- `handwritten`: `HANDWRITTEN` below, written for this benchmark (beats vs misses ...)
- `random`: two headlines drawn at random
"""

from __future__ import annotations

import csv
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

OUTLETS = ("Reuters", "Bloomberg", "MarketWatch", "CNBC", "Economic Times", "Moneycontrol")
SYNONYMS = {
    "shares": "stock",
    "stock": "shares",
    "rises": "gains",
    "gains": "rises",
    "rise": "gain",
    "falls": "drops",
    "drops": "falls",
    "fall": "drop",
    "jumps": "surges",
    "surges": "jumps",
    "slips": "slides",
    "profit": "earnings",
    "buys": "acquires",
    "acquires": "buys",
    "says": "said",
    "firm": "company",
    "company": "firm",
    "plans": "mulls",
}
OPPOSITES = {
    "beats": "misses",
    "misses": "beats",
    "rises": "falls",
    "rise": "fall",
    "falls": "rises",
    "fall": "rise",
    "gains": "loses",
    "jumps": "plunges",
    "surges": "slumps",
    "drops": "climbs",
    "up": "down",
    "down": "up",
    "higher": "lower",
    "lower": "higher",
    "raises": "cuts",
    "cuts": "raises",
    "profit": "loss",
    "loss": "profit",
    "upgrades": "downgrades",
    "downgrades": "upgrades",
    "gain": "loss",
    "slips": "rises",
}
FILLERS = ("reportedly", "now", "today")
HANDWRITTEN: tuple[tuple[str, str], ...] = (
    ("Acme beats quarterly earnings estimates", "Acme misses quarterly earnings estimates"),
    ("Globex shares rise after upbeat guidance", "Globex shares fall after upbeat guidance"),
    ("Initech raises full-year outlook", "Initech cuts full-year outlook"),
    ("Umbrella Corp to acquire Stark Labs", "Umbrella Corp not to acquire Stark Labs"),
    ("Hooli reports Q3 profit of $2 billion", "Hooli reports Q3 loss of $2 billion"),
    ("Wayne Enterprises upgraded to buy at Morgan", "Wayne Enterprises downgraded at Morgan"),
    ("Soylent Q2 revenue up 12%", "Soylent Q3 revenue up 12%"),
    ("Cyberdyne shares jump 8% on contract win", "Cyberdyne shares jump 15% on contract win"),
    ("Tyrell approves $5 billion buyback", "Tyrell rejects $5 billion buyback"),
    ("Oscorp CEO to step down in March", "Oscorp CEO will not step down in March"),
    ("Vandelay Industries profit rises 10%", "Vandelay Industries profit falls 10%"),
    ("Massive Dynamic wins Pentagon contract", "Massive Dynamic loses Pentagon contract"),
    ("Gringotts raises dividend to 40 cents", "Gringotts cuts dividend to 40 cents"),
    ("Nakatomi stock hits record high", "Nakatomi stock hits record low"),
    ("Fed holds rates steady, signals cuts ahead", "Fed raises rates, signals more hikes"),
    ("Oil rises as OPEC extends output cuts", "Oil falls as OPEC extends output cuts"),
    ("Acme Q1 sales beat forecasts", "Acme Q2 sales beat forecasts"),
    ("Globex denies report of merger talks", "Globex confirms report of merger talks"),
    ("Sensex gains 300 points in early trade", "Sensex loses 300 points in early trade"),
    ("Nifty ends higher led by IT stocks", "Nifty ends lower led by IT stocks"),
)


@dataclass(frozen=True, slots=True)
class Pair:
    """Two headlines, whether they are one story, and how the pair was made."""

    a: str
    b: str
    same: bool
    kind: str
    entity: str = ""


def read_headlines(paths: Iterable[Path]) -> list[tuple[str, str]]:
    """Distinct (text, entity) rows of SEntFiN-style CSV files, text stripped."""
    seen: dict[str, str] = {}
    for path in paths:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                text = " ".join(row["text"].split())
                if text and text not in seen:
                    seen[text] = row.get("entity", "")
    return list(seen.items())


def _words(text: str) -> list[str]:
    return text.split()


def _suffix(text: str, rng: random.Random) -> str:
    sep = rng.choice((" - ", " | ", " \u2014 "))
    return f"{text}{sep}{rng.choice(OUTLETS)}"


def _prefix(text: str, rng: random.Random) -> str:
    return rng.choice(("UPDATE 1-", "UPDATE 2-", "BREAKING: ", "(Reuters) - ")) + text


def _reorder(text: str, rng: random.Random) -> str:
    for sep in (", ", ": ", "; "):
        if sep in text:
            head, tail = text.split(sep, 1)
            return f"{tail}, {head}"
    return text


def _synonym(text: str, rng: random.Random) -> str:
    words = _words(text)
    spots = [i for i, w in enumerate(words) if w.lower() in SYNONYMS]
    if not spots:
        return text
    i = rng.choice(spots)
    words[i] = SYNONYMS[words[i].lower()]
    return " ".join(words)


def _edit(text: str, rng: random.Random) -> str:
    words = _words(text)
    droppable = [
        i
        for i, w in enumerate(words)
        if i > 0 and not re.search(r"\d", w) and w.lower() not in OPPOSITES
    ]
    if len(words) > 5 and droppable and rng.random() < 0.6:
        del words[rng.choice(droppable)]
    else:
        words.insert(rng.randrange(1, len(words) + 1), rng.choice(FILLERS))
    return " ".join(words)


def _truncate(text: str, rng: random.Random) -> str:
    words = _words(text)
    if len(words) < 6:
        return text
    return " ".join(words[: max(4, (len(words) * 3) // 4)]) + "..."


def _case(text: str, rng: random.Random) -> str:
    return text.upper() if rng.random() < 0.5 else text.title()


def _entities(text: str, rng: random.Random) -> str:
    return text.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&quot;")


REWRITES: dict[str, Callable[[str, random.Random], str]] = {
    "suffix": _suffix,
    "prefix": _prefix,
    "reorder": _reorder,
    "synonym": _synonym,
    "edit": _edit,
    "truncate": _truncate,
    "case": _case,
    "entities": _entities,
}


def rewrite(
    text: str, rng: random.Random, count: int, exclude: frozenset[str] = frozenset()
) -> tuple[str, list[str]]:
    """`text` re-titled by `count` distinct rewrite rules; returns the rules applied."""
    names = rng.sample(sorted(set(REWRITES) - exclude), count)
    for name in names:
        text = REWRITES[name](text, rng)
    return text, names


def _flip(text: str, rng: random.Random) -> str | None:
    words = _words(text)
    spots = [i for i, w in enumerate(words) if w.lower() in OPPOSITES]
    if not spots:
        return None
    i = rng.choice(spots)
    words[i] = OPPOSITES[words[i].lower()]
    return " ".join(words)


def _change_number(text: str, rng: random.Random) -> str | None:
    numbers = list(re.finditer(r"\d+(?:\.\d+)?", text))
    if not numbers:
        return None
    match = rng.choice(numbers)
    value = float(match.group())
    changed = value * rng.choice((1.3, 1.7, 0.6)) + 1
    new = f"{changed:.1f}" if "." in match.group() else str(int(changed))
    return text[: match.start()] + new + text[match.end() :]


def _negate(text: str, rng: random.Random) -> str | None:
    if " will " in text:
        return text.replace(" will ", " will not ", 1)
    if " to " in text:
        return text.replace(" to ", " not to ", 1)
    return None


_MAY_CUT_THE_DIFFERENCE = frozenset({"truncate", "edit"})
"""Rules never used on a hard negative: they may drop the very word that makes it one."""


def build_pairs(
    headlines: list[tuple[str, str]], *, seed: int = 16, size: int = 2000
) -> list[Pair]:
    """About `size` positives and as many negatives (see the module docstring)."""
    rng = random.Random(seed)
    pool = [h for h in headlines if len(_words(h[0])) >= 3]
    rng.shuffle(pool)
    pairs: list[Pair] = []
    for text, entity in pool[:size]:
        copy, rules = rewrite(text, rng, rng.randint(1, 3))
        if copy != text:
            pairs.append(Pair(text, copy, True, "+".join(sorted(rules)), entity))
    makers = {"flipped": _flip, "number": _change_number, "negated": _negate}
    per_kind = size // 5
    for kind, make in makers.items():
        made = 0
        for text, entity in pool:
            if made >= per_kind:
                break
            other = make(text, rng)
            if other is None or other == text:
                continue
            other, _ = rewrite(other, rng, 1, exclude=_MAY_CUT_THE_DIFFERENCE)
            pairs.append(Pair(text, other, False, kind, entity))
            made += 1
    by_entity: dict[str, list[str]] = defaultdict(list)
    for text, entity in pool:
        if entity:
            by_entity[entity].append(text)
    groups = [texts for texts in by_entity.values() if len(texts) >= 2]
    for _ in range(per_kind if groups else 0):
        group = rng.choice(groups)
        a, b = rng.sample(group, 2)
        pairs.append(Pair(a, b, False, "same_entity", by_entity_key(by_entity, a)))
    for _ in range(per_kind):
        (a, _ea), (b, _eb) = rng.sample(pool, 2)
        pairs.append(Pair(a, b, False, "random"))
    pairs.extend(Pair(a, b, False, "handwritten") for a, b in HANDWRITTEN)
    return pairs


def by_entity_key(by_entity: dict[str, list[str]], text: str) -> str:
    return next((entity for entity, texts in by_entity.items() if text in texts), "")
