"""Test doubles: a deterministic keyword classifier with the real `Classifier` interface.

Used only by unit tests of agents and storage, where the real model would make tests slow
without testing anything more; end-to-end tests use the real model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from monitor.model.interface import Classification, ModelInput

BEARISH_WORDS = ("plunge", "crash", "tumble", "falls", "slide", "downgrade", "probe", "miss")
BULLISH_WORDS = ("jump", "beat", "surge", "record", "upgrade", "raise", "climb")


_CLAUSE = re.compile(r",|;| while | as | but ", re.IGNORECASE)


class KeywordClassifier:
    """Bearish/bullish by keyword, topic 'Stock Movement'; counts its calls and batch sizes.

    With a target, only the clause of the headline that names the target is read
    ("$ACME jumps, $WDGT plunges": bullish for ACME, bearish for WDGT), as a model that
    reads sentiment towards a company would."""

    model_version = "keyword-double-1"
    accepts_targets = True

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def ready(self) -> bool:
        return True

    def classify(self, inputs: Sequence[ModelInput]) -> list[Classification]:
        self.batch_sizes.append(len(inputs))
        return [self._one(_clause(i.headline, i.target)) for i in inputs]

    def _one(self, headline: str) -> Classification:
        if not headline.strip():
            raise ValueError("empty headline")
        text = headline.lower()
        if any(w in text for w in BEARISH_WORDS):
            probs = {"bearish": 0.9, "neutral": 0.08, "bullish": 0.02}
        elif any(w in text for w in BULLISH_WORDS):
            probs = {"bearish": 0.02, "neutral": 0.08, "bullish": 0.9}
        else:
            probs = {"bearish": 0.1, "neutral": 0.8, "bullish": 0.1}
        sentiment = max(probs, key=probs.__getitem__)
        return Classification(
            topic="Stock Movement",
            topic_confidence=0.7,
            sentiment=sentiment,
            sentiment_score=probs["bullish"] - probs["bearish"],
            sentiment_probs=probs,
            model_version=self.model_version,
        )


def _clause(headline: str, target: str | None) -> str:
    if not target:
        return headline
    clauses = _CLAUSE.split(headline)
    return next((c for c in clauses if target.lower() in c.lower()), headline)
