"""Calibration of a head's probabilities: how far confidence is from accuracy, and the
temperatures that bring them together.

Alerts compare window scores built from p(bullish) - p(bearish), so over-confident
probabilities exaggerate every swing. Temperature scaling (dividing the logits by one
fitted T) keeps every prediction's argmax and only reshapes its confidence.

A head has one temperature for plain inputs and may have another for inputs with a
target: serving asks about a target only for items that name several companies, the
hardest rows the model sees, which one shared temperature leaves over-confident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.model.inference import softmax


def reliability(
    logits: np.ndarray, labels: np.ndarray, bins: int = 15
) -> list[tuple[float, float, float]]:
    """Per non-empty equal-width confidence bin, in confidence order: (mean confidence,
    accuracy, share of rows); what a reliability diagram draws and ECE sums."""
    probs = softmax(logits)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return [
        (float(confidence[members].mean()), float(correct[members].mean()), float(members.mean()))
        for members in (which == b for b in range(bins))
        if members.any()
    ]


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """The confidence-weighted gap between confidence and accuracy, over equal-width
    confidence bins (the standard ECE of Guo et al., 2017)."""
    if len(labels) == 0:
        return 0.0
    return float(
        sum(share * abs(conf - acc) for conf, acc, share in reliability(logits, labels, bins))
    )


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probs = softmax(logits, temperature)
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, low: float = 0.05, high: float = 20.0
) -> float:
    """The temperature in [low, high] minimising the negative log-likelihood, by
    golden-section search on log T (the NLL is unimodal in T)."""
    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    nll = {}

    def f(x: float) -> float:
        if x not in nll:
            nll[x] = negative_log_likelihood(logits, labels, float(np.exp(x)))
        return nll[x]

    for _ in range(60):
        if f(c) < f(d):
            b, d = d, c
            c = b - ratio * (b - a)
        else:
            a, c = c, d
            d = a + ratio * (b - a)
    return round(float(np.exp((a + b) / 2)), 4)


@dataclass(frozen=True)
class Temperatures:
    """The shipped temperatures of an artifact: per head, and per head for targeted inputs
    where fitted (a head without either is left as it is, T = 1)."""

    head: Mapping[str, float] = field(default_factory=dict)
    targeted: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Temperatures:
        """From ``finmon.json``: ``temperature`` and ``targeted_temperature`` (artifacts
        from before the latter use the head's temperature for every input)."""
        return cls(dict(meta.get("temperature", {})), dict(meta.get("targeted_temperature", {})))

    def of(self, task: str, targeted: bool = False) -> float:
        head = float(self.head.get(task, 1.0))
        return float(self.targeted.get(task, head)) if targeted else head

    def scale(self, logits: np.ndarray, task: str, targeted: np.ndarray) -> np.ndarray:
        """``logits`` of ``task`` divided row by row by the temperature of the row's kind
        (``targeted``: one bool per row)."""
        kinds = np.asarray(targeted, dtype=bool)
        per_row = np.where(kinds, self.of(task, True), self.of(task)).astype(logits.dtype)
        scaled: np.ndarray = logits / per_row.reshape(-1, 1)
        return scaled
