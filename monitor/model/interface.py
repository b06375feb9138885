"""The small batched interface between the pipeline and any classifier.

The pipeline only depends on this module, so the real model, a quantised one and the
test doubles used by agent unit tests are interchangeable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

SENTIMENT_LABELS: tuple[str, ...] = ("bearish", "neutral", "bullish")


class ModelInput(NamedTuple):
    """One item to classify: the headline always, the body when there is one.

    Kept as two fields (not one joined string) so truncation can keep the headline
    whole and cut the body first.
    """

    headline: str
    body: str | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    """The model's verdict on one item."""

    topic: str
    topic_confidence: float
    sentiment: str
    sentiment_score: float
    """p(bullish) - p(bearish), in [-1, 1]."""
    sentiment_probs: Mapping[str, float]
    model_version: str


class Classifier(Protocol):
    """Anything that classifies a batch of items, in order, one result per input."""

    @property
    def model_version(self) -> str: ...

    def classify(self, inputs: Sequence[ModelInput]) -> list[Classification]: ...

    def ready(self) -> bool:
        """Whether a `classify` call would be served now (the worker's `/ready`): false
        while the model is out of service, e.g. its process is dead or restarting."""
        ...
