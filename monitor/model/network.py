"""The network: one shared encoder, masked mean pooling, and a linear head per task.

Any local Hugging Face encoder directory works as the base: LoRA goes on every Linear
layer the encoder has, by the names that architecture gives them (BERT's query / key /
value / dense, MPNet's q / k / v / o / dense, DistilBERT's q_lin ... lin2), and token type
ids reach only an encoder that takes them.

Mean pooling over the attention mask matches how all-MiniLM-L6-v2 was pre-trained (as a
sentence-transformers model), and it beat the CLS vector in a linear probe on this data
(see the artifact's model card, models/finmon-minilm-v1/MODEL_CARD.md). Masking the padding
out of the mean is what makes an item's result independent of the batch it is padded into.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import MODEL_MAPPING, AutoConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from monitor.model import base as _base  # noqa: F401  (switches the hub off first)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors of each row over its real (unmasked) tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class MultiTaskModel(nn.Module):
    """Encoder + pooling + one linear head per task; returns logits for every task.

    A task may also have a *targeted head* (``targeted_tasks``): the head that reads the
    rows asked about a target, fitted on such rows alone (:mod:`monitor.model.refit`).
    Sentiment towards one of several companies in a headline is a different question from
    the headline's own sentiment, and one head shared by both answers each less well. Rows
    are routed by the ``targeted`` flags given to :meth:`forward`; a task without a
    targeted head reads every row with its one head, as before."""

    def __init__(
        self,
        encoder: nn.Module,
        label_names: Mapping[str, Sequence[str]],
        dropout: float = 0.1,
        targeted_tasks: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.label_names = {task: tuple(names) for task, names in label_names.items()}
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        config: Any = encoder.config  # a Hugging Face model's config (a PretrainedConfig)
        hidden = int(config.hidden_size)
        self.heads = nn.ModuleDict(
            {task: nn.Linear(hidden, len(names)) for task, names in label_names.items()}
        )
        self.targeted_heads = nn.ModuleDict(
            {task: nn.Linear(hidden, len(label_names[task])) for task in targeted_tasks}
        )
        base = encoder.get_base_model() if isinstance(encoder, PeftModel) else encoder
        self._token_types = "token_type_ids" in inspect.signature(base.forward).parameters

    def pool(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The pooled vector every head reads (before dropout)."""
        types = {"token_type_ids": token_type_ids} if self._token_types else {}
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **types)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        targeted: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Logits per task; with ``targeted`` (one bool per row), the rows flagged are read
        by their task's targeted head where it has one."""
        pooled = self.dropout(self.pool(input_ids, attention_mask, token_type_ids))
        logits = {task: head(pooled).float() for task, head in self.heads.items()}
        if targeted is not None and bool(targeted.any()):
            rows = targeted.unsqueeze(1)
            for task, head in self.targeted_heads.items():
                logits[task] = torch.where(rows, head(pooled).float(), logits[task])
        return logits


def load_encoder(base_dir: Path) -> PreTrainedModel:
    """The base encoder from a local directory, without the unused pooler layer of the
    architectures that have one (mean pooling replaces it).

    Transformers warns that the checkpoint's pooler weights go unused; that is the intent
    here, so its logging is quietened for the duration of the load.
    """
    config = AutoConfig.from_pretrained(str(base_dir), local_files_only=True)
    model_class: Any = MODEL_MAPPING[type(config)]  # a PreTrainedModel subclass
    options = {"local_files_only": True}
    if "add_pooling_layer" in inspect.signature(model_class.__init__).parameters:
        options["add_pooling_layer"] = False
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        encoder: PreTrainedModel = model_class.from_pretrained(str(base_dir), **options)
        return encoder
    finally:
        hf_logging.set_verbosity(verbosity)


def module_names(encoder: nn.Module, kind: type[nn.Module]) -> list[str]:
    """The distinct last names of the encoder's modules of one kind (e.g. ``nn.Linear``),
    which is how peft selects modules whatever the architecture calls them."""
    return sorted(
        {name.rsplit(".", 1)[-1] for name, m in encoder.named_modules() if isinstance(m, kind)}
    )


def lora_config(
    encoder: nn.Module, rank: int, alpha: float, dropout: float, train_layernorm: bool
) -> LoraConfig:
    """LoRA on every Linear layer of ``encoder``; its LayerNorms optionally trained in full
    (they are tiny)."""
    return LoraConfig(
        r=rank,
        # peft annotates lora_alpha as int but scales by lora_alpha / r: a float is honoured
        lora_alpha=alpha,  # type: ignore[arg-type]
        lora_dropout=dropout,
        target_modules=module_names(encoder, nn.Linear),
        modules_to_save=module_names(encoder, nn.LayerNorm) if train_layernorm else None,
        bias="none",
    )


def add_lora(encoder: PreTrainedModel, config: LoraConfig) -> PeftModel:
    """Wrap the encoder with fresh LoRA weights; only LoRA (and LayerNorms) stay trainable."""
    return get_peft_model(encoder, config)
