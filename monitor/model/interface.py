"""The small batched interface between the pipeline and any classifier.

The pipeline only depends on this module, so the real model, a quantised one and the
test doubles used by agent unit tests are interchangeable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

Task = Literal["topic", "sentiment"]
TASKS: tuple[Task, ...] = ("topic", "sentiment")
"""The classifier's tasks, each with a head of its own."""

TARGETED_SUFFIX = "@target"
TARGETED_HEADS: tuple[str, ...] = ("sentiment" + TARGETED_SUFFIX,)
"""Heads that read only the rows asked about a target (a task's *targeted head*), named
``<task>@target``: the topic does not depend on the target, sentiment does."""

SENTIMENT_LABELS: tuple[str, ...] = ("bearish", "neutral", "bullish")


class ModelInput(NamedTuple):
    """One item to classify: the headline always, the body when there is one, and the
    company whose sentiment is asked for when there is one.

    Headline and body are kept apart (not one joined string) so truncation can keep the
    headline whole and cut the body first. With a ``target`` (a company name or ticker)
    the sentiment is the one *towards that company*: "X gains, Y slips" is bullish for X
    and bearish for Y. The topic does not depend on the target.
    """

    headline: str
    body: str | None = None
    target: str | None = None


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

    @property
    def accepts_targets(self) -> bool:
        """Whether `ModelInput.target` is understood (the model was trained with targets);
        a classifier that does not must not be asked about targets."""
        ...

    def classify(self, inputs: Sequence[ModelInput]) -> list[Classification]: ...

    def ready(self) -> bool:
        """Whether a `classify` call would be served now (the worker's `/ready`): false
        while the model is out of service, e.g. its process is dead or restarting."""
        ...
