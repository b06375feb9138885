"""The serving classifier: many items in, one :class:`Classification` per item out.

It implements :class:`monitor.model.interface.Classifier`. LoRA is merged into the base
at load time so serving costs the same as the plain encoder, items are length-sorted
into chunks of ``max_batch_size`` to cut padding, and results come back in input order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from monitor.model.artifact import LoadedArtifact, load_artifact
from monitor.model.calibration import Temperatures
from monitor.model.encoding import Features, encode_items, token_balanced_slices
from monitor.model.inference import predict_logits, softmax
from monitor.model.interface import SENTIMENT_LABELS, Classification, ModelInput
from monitor.model.text import normalise_text
from monitor.resources import bundled_artifact

CpuParallelism = Literal["split-batch", "intra-op"]
MIN_ITEMS_PER_SLICE = 4
SPARE_SLICES = 2
"""Slices beyond one per core in split-batch (see `load_classifier`)."""


class BatchedClassifier:
    """Topic + sentiment for batches of :class:`ModelInput`.

    With ``cpu_slices`` > 1 each batch is cut into that many token-balanced slices run at
    once by single-threaded workers (torch runs one thread per op). For a small encoder on
    short texts this matches torch's own multi-threaded ops when the CPU is idle, and it
    keeps its speed when the CPU is shared: a multi-threaded op waits at a barrier for its
    slowest thread, so one core taken by the worker's SQL, Kafka or PostgreSQL stalls every
    op (the measurements are in docs/performance.md).
    """

    def __init__(
        self,
        loaded: LoadedArtifact,
        *,
        device: torch.device,
        max_batch_size: int,
        cpu_slices: int = 1,
    ):
        if tuple(loaded.label_names["sentiment"]) != SENTIMENT_LABELS:
            raise ValueError(
                f"sentiment labels {loaded.label_names['sentiment']} differ from the "
                f"interface's {SENTIMENT_LABELS}"
            )
        self._loaded = loaded
        self._device = device
        self._max_batch_size = max_batch_size
        self._pad_id = int(loaded.tokenizer.pad_token_id)
        self._bullish = SENTIMENT_LABELS.index("bullish")
        self._bearish = SENTIMENT_LABELS.index("bearish")
        self._cpu_slices = cpu_slices if device.type == "cpu" else 1
        self._pool = (
            ThreadPoolExecutor(self._cpu_slices - 1, thread_name_prefix="finmon-infer")
            if self._cpu_slices > 1
            else None
        )

    @property
    def model_version(self) -> str:
        return self._loaded.version

    def ready(self) -> bool:
        """Always: the model lives in this process, so it is up whenever this code runs."""
        return True

    @property
    def accepts_targets(self) -> bool:
        return bool(self._loaded.meta.get("targets", False))

    @property
    def parallelism(self) -> str:
        """How a batch uses the hardware, for reports: device and CPU threads."""
        if self._device.type != "cpu":
            return self._device.type
        if self._cpu_slices > 1:
            return f"{torch.get_num_threads()}-thread ops, {self._cpu_slices} slices"
        return f"{torch.get_num_threads()} threads, intra-op"

    @property
    def label_names(self) -> dict[str, list[str]]:
        return self._loaded.label_names

    @property
    def max_length(self) -> int:
        """Token limit per item; longer items are truncated, body first."""
        return self._loaded.max_length

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self._loaded.tokenizer

    def encode(self, inputs: Sequence[ModelInput]) -> list[Features]:
        """Validate, normalise and tokenise; an empty headline is a caller error."""
        for position, item in enumerate(inputs):
            if not item.headline or not item.headline.strip():
                raise ValueError(f"input {position}: headline is empty or whitespace-only")
        return encode_items(
            self._loaded.tokenizer,
            [
                (
                    normalise_text(item.headline),
                    normalise_text(item.body) if item.body else None,
                    normalise_text(item.target) if item.target else None,
                )
                for item in inputs
            ],
            self._loaded.max_length,
            mark_target=bool(self._loaded.meta.get("target_markers", False)),
        )

    @property
    def temperatures(self) -> Temperatures:
        """The artifact's calibration temperatures (1.0 where it has none)."""
        return Temperatures.from_meta(self._loaded.meta)

    def calibrated_logits(self, inputs: Sequence[ModelInput]) -> dict[str, np.ndarray]:
        """Logits per task divided by the temperature of each input's kind (with or
        without a target), in input order."""
        targeted = asked_about_target(inputs)
        temperatures = self.temperatures
        return {
            task: temperatures.scale(logits, task, targeted)
            for task, logits in self._logits(inputs, targeted).items()
        }

    def predict_probs(self, inputs: Sequence[ModelInput]) -> dict[str, np.ndarray]:
        """Calibrated class probabilities per task (columns in ``label_names`` order), in
        input order."""
        return {task: softmax(logits) for task, logits in self.calibrated_logits(inputs).items()}

    def predict_logits(self, inputs: Sequence[ModelInput]) -> dict[str, np.ndarray]:
        """Raw logits per task (columns in ``label_names`` order), in input order."""
        return self._logits(inputs, asked_about_target(inputs))

    def _logits(self, inputs: Sequence[ModelInput], targeted: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`predict_logits` given the inputs' :func:`asked_about_target` flags."""
        if not inputs:
            return {task: np.zeros((0, len(n))) for task, n in self.label_names.items()}
        encoded = self.encode(inputs)
        slices = token_balanced_slices(
            [len(f["input_ids"]) for f in encoded], self._cpu_slices, MIN_ITEMS_PER_SLICE
        )
        if self._pool is None or len(slices) == 1:
            return self._predict(encoded, targeted)

        def run(indices: Sequence[int]) -> dict[str, np.ndarray]:
            return self._predict([encoded[i] for i in indices], targeted[list(indices)])

        # the calling thread runs the first slice while the pool runs the others
        pending = [self._pool.submit(run, s) for s in slices[1:]]
        parts = [run(slices[0])] + [f.result() for f in pending]
        probs = {t: np.empty((len(encoded), p.shape[1]), p.dtype) for t, p in parts[0].items()}
        for indices, part in zip(slices, parts, strict=True):
            for task, values in part.items():
                probs[task][indices] = values
        return probs

    def _predict(self, encoded: Sequence[Features], targeted: np.ndarray) -> dict[str, np.ndarray]:
        return predict_logits(
            self._loaded.model,
            encoded,
            pad_id=self._pad_id,
            batch_size=self._max_batch_size,
            device=self._device,
            targeted=targeted,
        )

    def classify(self, inputs: Sequence[ModelInput]) -> list[Classification]:
        probs = self.predict_probs(inputs)
        topics = self.label_names["topic"]
        results = []
        for topic_p, sent_p in zip(probs["topic"], probs["sentiment"], strict=True):
            topic_i = int(topic_p.argmax())
            results.append(
                Classification(
                    topic=topics[topic_i],
                    topic_confidence=float(topic_p[topic_i]),
                    sentiment=SENTIMENT_LABELS[int(sent_p.argmax())],
                    sentiment_score=float(sent_p[self._bullish] - sent_p[self._bearish]),
                    sentiment_probs={
                        label: float(p) for label, p in zip(SENTIMENT_LABELS, sent_p, strict=True)
                    },
                    model_version=self.model_version,
                )
            )
        return results


def asked_about_target(inputs: Sequence[ModelInput]) -> np.ndarray:
    """One flag per input: whether it is encoded with a target (one that is more than
    whitespace), so its rows take the targeted heads and temperatures."""
    return np.array([bool(item.target and item.target.strip()) for item in inputs], dtype=bool)


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_classifier(
    path: str | Path | None = None,
    *,
    device: str = "auto",
    threads: int | None = None,
    max_batch_size: int = 64,
    base_dir: str | Path | None = None,
    cpu_parallelism: CpuParallelism = "split-batch",
) -> BatchedClassifier:
    """Load an artifact (by default the bundled default, `monitor.resources`) for serving.

    ``threads`` is the CPU cores inference uses (default: all CPUs). With ``split-batch``
    each batch is cut into ``threads + SPARE_SLICES`` slices run at once, single-threaded:
    more slices than cores, so that when another process takes a core for a moment the
    other slices keep every core busy instead of the batch waiting for the preempted one,
    and the last slice of a batch leaves a core idle for less time (the number of spare
    slices was chosen by the end-to-end benchmark: docs/performance.md). With ``intra-op``
    torch parallelises each op
    over ``threads``. Either way this sets torch's process-wide thread count. There is
    deliberately no int8 option: dynamic int8 cost 0.8 points of topic accuracy (see the
    model card).
    """
    threads = threads or os.cpu_count() or 1
    target = resolve_device(device)
    split = cpu_parallelism == "split-batch" and target.type == "cpu"
    torch.set_num_threads(1 if split else threads)
    loaded = load_artifact(
        Path(path) if path else bundled_artifact(), Path(base_dir) if base_dir else None
    )
    loaded.model.to(target)
    return BatchedClassifier(
        loaded,
        device=target,
        max_batch_size=max_batch_size,
        cpu_slices=threads + SPARE_SLICES if split and threads > 1 else 1,
    )
