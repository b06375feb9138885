"""Precision and recall of story linking on labelled pairs (pure: no I/O, no timing).

Each pair goes through `Linker.link` exactly as the store uses it: the first headline is a
stored candidate, the second a new item, published ten minutes later. So the figures include
LSH candidate generation (a pair that shares no band is a miss) and verification.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.novelty_data import Pair
from monitor.novelty import Linker, StoryItem

_T0 = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


@dataclass(slots=True)
class Scores:
    """Counts of a pairwise evaluation, overall and per kind of pair."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    by_kind: Counter[tuple[str, bool]] = field(default_factory=Counter)
    """(kind, linked) -> pairs."""
    errors: list[Pair] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def kinds(self) -> dict[str, dict[str, int]]:
        """Per kind: pairs linked and pairs kept apart."""
        out: dict[str, dict[str, int]] = {}
        for (kind, linked), n in sorted(self.by_kind.items()):
            out.setdefault(kind, {"linked": 0, "apart": 0})["linked" if linked else "apart"] += n
        return out


def linked(linker: Linker, pair: Pair) -> bool:
    """Whether the linker puts `pair.b` into `pair.a`'s story."""
    stored = StoryItem("a", _T0, pair.a, story_id="a")
    new = StoryItem("b", _T0 + timedelta(minutes=10), pair.b)
    return not linker.link([new], [stored])[0].is_novel


def evaluate(linker: Linker, pairs: Iterable[Pair]) -> Scores:
    scores = Scores()
    for pair in pairs:
        got = linked(linker, pair)
        kind = "same:" + pair.kind.split("+")[0] if pair.same else pair.kind
        scores.by_kind[(kind if not pair.same else "same", got)] += 1
        if pair.same and got:
            scores.tp += 1
        elif pair.same:
            scores.fn += 1
            scores.errors.append(pair)
        elif got:
            scores.fp += 1
            scores.errors.append(pair)
        else:
            scores.tn += 1
    return scores
