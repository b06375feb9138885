"""The classifier ceiling: finmon's batched classifier alone, swept over batch sizes.

Each batch size is measured the way the worker uses the classifier: one ``classify`` call per
batch of `batch_size` items (the worker hands it one Kafka batch at a time), so the figures
include tokenising, length-sorting, padding, the forward pass and building the results, and
nothing else. The best batch size's items/s is the limit the end-to-end pipeline can approach.

On a shared machine a burst of someone else's work can halve one measurement, so the pool is
split into `rounds` slices and the sizes are interleaved (round 1: every size on slice 1, round
2: every size on slice 2, ...); a size's figure is its median over the rounds, and the spread
is kept in the results.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from monitor.model.batched import BatchedClassifier
from monitor.model.interface import Classification, ModelInput

DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 8, 16, 32, 64, 128)
GPU_BATCH_SIZES: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 512)
DEFAULT_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class Timing:
    """`items` processed in `seconds`."""

    items: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.items / self.seconds


def median_rate(timings: Sequence[Timing]) -> float:
    return statistics.median(t.rate for t in timings)


def rate_spread(timings: Sequence[Timing]) -> list[float]:
    return [round(min(t.rate for t in timings), 1), round(max(t.rate for t in timings), 1)]


class TimedRounds:
    """Totals over a measurement's `rounds`, shared by the sweep and the naive baseline."""

    __slots__ = ()
    rounds: list[Timing]

    @property
    def items(self) -> int:
        return sum(t.items for t in self.rounds)

    @property
    def items_per_s(self) -> float:
        """The median over the rounds, so one burst of other work cannot make or break it."""
        return median_rate(self.rounds)


@dataclass(frozen=True, slots=True)
class SweepPoint(TimedRounds):
    batch_size: int
    rounds: list[Timing]

    @property
    def batch_seconds(self) -> float:
        """Wall time of one full batch at the median rate: the inference part of latency."""
        return self.batch_size / self.items_per_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "items": self.items,
            "items_per_s": round(self.items_per_s, 1),
            "rounds_items_per_s": [round(t.rate, 1) for t in self.rounds],
            "spread_items_per_s": rate_spread(self.rounds),
            "batch_ms": round(self.batch_seconds * 1000, 1),
        }


@dataclass(frozen=True, slots=True)
class Sweep:
    device: str
    parallelism: str
    points: list[SweepPoint]

    @property
    def best(self) -> SweepPoint:
        return max(self.points, key=lambda p: p.items_per_s)

    def at(self, batch_size: int) -> SweepPoint | None:
        return next((p for p in self.points if p.batch_size == batch_size), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "parallelism": self.parallelism,
            "sweep": [p.to_dict() for p in self.points],
            "best": self.best.to_dict(),
        }


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so the clock stops when the results exist."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def slices(items: Sequence[Any], rounds: int) -> list[Sequence[Any]]:
    """`items` cut into `rounds` contiguous, nearly equal slices."""
    bounds = [round(i * len(items) / rounds) for i in range(rounds + 1)]
    return [items[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def classify_in_batches(
    classifier: BatchedClassifier, inputs: Sequence[ModelInput], batch_size: int
) -> list[Classification]:
    """What the worker does with a stream of batches: one ``classify`` call per batch."""
    results: list[Classification] = []
    for start in range(0, len(inputs), batch_size):
        results.extend(classifier.classify(inputs[start : start + batch_size]))
    return results


def sweep(
    classifier: BatchedClassifier,
    inputs: Sequence[ModelInput],
    batch_sizes: Sequence[int],
    *,
    device: torch.device,
    rounds: int = DEFAULT_ROUNDS,
    progress: bool = True,
) -> Sweep:
    """items/s per batch size over the same `inputs`, interleaved over `rounds` slices.

    The classifier must have been loaded with ``max_batch_size >= max(batch_sizes)`` so that
    a call of `batch_size` items is one forward pass, as in the worker.
    """
    for size in batch_sizes:  # warm-up: allocator, kernels, shapes
        classifier.classify(inputs[:size])
    _sync(device)
    timings: dict[int, list[Timing]] = {size: [] for size in batch_sizes}
    parts = slices(inputs, rounds)
    with tqdm(
        total=len(parts) * len(batch_sizes),
        desc=f"classifier sweep ({device.type})",
        unit="run",
        disable=not progress,
    ) as bar:
        for part in parts:
            for size in batch_sizes:
                started = time.perf_counter()
                classify_in_batches(classifier, part, size)
                _sync(device)
                timings[size].append(Timing(len(part), time.perf_counter() - started))
                bar.update()
    points = [SweepPoint(size, timings[size]) for size in batch_sizes]
    return Sweep(device.type, classifier.parallelism, points)
