"""Calibration of a head's probabilities: how far confidence is from accuracy, and the
single temperature that brings them together.

Alerts compare window scores built from p(bullish) - p(bearish), so over-confident
probabilities exaggerate every swing. Temperature scaling (dividing the logits by one
fitted T) keeps every prediction's argmax and only reshapes its confidence.
"""

from __future__ import annotations

import numpy as np

from monitor.model.inference import softmax


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """The confidence-weighted gap between confidence and accuracy, over equal-width
    confidence bins (the standard ECE of Guo et al., 2017)."""
    if len(labels) == 0:
        return 0.0
    probs = softmax(logits)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = abs(float(confidence[members].mean()) - float(correct[members].mean()))
            total += members.mean() * gap
    return float(total)


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
