"""The naive baseline: a `transformers` text-classification pipeline, one call per headline.

This is how such a classifier is commonly served: wrap the model so the stock pipeline
accepts it and call ``pipe(text)`` for each item as it arrives. To make the comparison with
finmon's batched classifier about *serving*, not about the model, the baseline runs exactly
finmon's network: the same artifact, loaded by the same loader (LoRA merged into the base
encoder), the same masked mean pooling, the same sentiment head, the same truncation length
and the same torch thread count. Only the topic head is left out, which makes the baseline's
work slightly smaller, never larger.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm import tqdm
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertPreTrainedModel,
    pipeline,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from bench.ceiling import DEFAULT_ROUNDS, TimedRounds, Timing, rate_spread, slices
from monitor.model.artifact import LoadedArtifact
from monitor.model.network import mean_pool


class FinmonSentimentConfig(BertConfig):
    """A BERT config under its own model type, so the Auto classes can map it to our head."""

    model_type = "finmon-sentiment"


class FinmonSentimentForSequenceClassification(BertPreTrainedModel):
    """finmon's merged encoder + mean pooling + sentiment head, shaped like any HF classifier.

    The modules are the ones finmon loaded (shared, not copied), so the weights are
    identical by construction; ``post_init`` is deliberately not called, as it would
    re-initialise them.
    """

    config_class = FinmonSentimentConfig

    def __init__(self, config: FinmonSentimentConfig, encoder: nn.Module, head: nn.Linear):
        super().__init__(config)
        self.bert = encoder
        self.classifier = head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        **_: Any,
    ) -> SequenceClassifierOutput:
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        return SequenceClassifierOutput(logits=self.classifier(mean_pool(hidden, attention_mask)))


AutoConfig.register(FinmonSentimentConfig.model_type, FinmonSentimentConfig)
AutoModelForSequenceClassification.register(
    FinmonSentimentConfig, FinmonSentimentForSequenceClassification
)


def sentiment_pipeline(loaded: LoadedArtifact) -> Any:
    """A stock ``pipeline("text-classification")`` over the artifact's sentiment task."""
    labels = loaded.label_names["sentiment"]
    # the multi-task model types its parts as plain modules; here they are a BERT and a Linear
    encoder: Any = loaded.model.encoder
    head: Any = loaded.model.heads["sentiment"]
    tokenizer: Any = loaded.tokenizer
    config = FinmonSentimentConfig(
        **encoder.config.to_dict()
        | {
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
            "model_type": FinmonSentimentConfig.model_type,
        }
    )
    model = FinmonSentimentForSequenceClassification(config, encoder, head).eval()
    return pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")


@dataclass(frozen=True, slots=True)
class NaiveResult(TimedRounds):
    rounds: list[Timing]
    labels: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "items_per_s": round(self.items_per_s, 1),
            "rounds_items_per_s": [round(t.rate, 1) for t in self.rounds],
            "spread_items_per_s": rate_spread(self.rounds),
        }


def run_naive(
    loaded: LoadedArtifact,
    headlines: list[str],
    *,
    threads: int,
    rounds: int = DEFAULT_ROUNDS,
    warmup: int = 8,
    progress: bool = True,
) -> NaiveResult:
    """Time one pipeline call per headline (after `warmup` untimed calls), in `rounds` slices.

    The pipeline runs with `threads` torch threads, the way it is commonly run (torch's own
    intra-op parallelism); the process-wide setting is restored afterwards, since finmon's
    classifier may have set its own."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _timed(sentiment_pipeline(loaded), loaded, headlines, rounds, warmup, progress)
    finally:
        torch.set_num_threads(previous)


def _timed(
    pipe: Any,
    loaded: LoadedArtifact,
    headlines: list[str],
    rounds: int,
    warmup: int,
    progress: bool,
) -> NaiveResult:
    call = {"truncation": True, "max_length": loaded.max_length}
    for text in headlines[:warmup]:
        pipe(text, **call)
    labels: list[str] = []
    timings: list[Timing] = []
    with tqdm(
        total=len(headlines), desc="naive pipeline", unit="item", disable=not progress
    ) as bar:
        for part in slices(headlines, rounds):
            started = time.perf_counter()
            for text in part:
                labels.append(pipe(text, **call)[0]["label"])
            timings.append(Timing(len(part), time.perf_counter() - started))
            bar.update(len(part))
    return NaiveResult(timings, labels)
