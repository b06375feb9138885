"""The network: one shared encoder, masked mean pooling, and a linear head per task.

Mean pooling over the attention mask matches how all-MiniLM-L6-v2 was pre-trained (as a
sentence-transformers model), and it beat the CLS vector in a linear probe on this data
(see the artifact's model card, models/finmon-minilm-v1/MODEL_CARD.md). Masking the padding
out of the mean is what makes an item's result independent of the batch it is padded into.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import logging as hf_logging

from monitor.model import base as _base  # noqa: F401  (switches the hub off first)

# Every Linear in a BERT layer: attention q/k/v, attention output, and both FFN layers.
LORA_TARGETS: tuple[str, ...] = ("query", "key", "value", "dense")
LAYERNORM_MODULES: tuple[str, ...] = ("LayerNorm",)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors of each row over its real (unmasked) tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class MultiTaskModel(nn.Module):
    """Encoder + pooling + one linear head per task; returns logits for every task."""

    def __init__(
        self, encoder: nn.Module, label_names: Mapping[str, Sequence[str]], dropout: float = 0.1
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

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        out = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        pooled = self.dropout(mean_pool(out.last_hidden_state, attention_mask))
        return {task: head(pooled).float() for task, head in self.heads.items()}


def load_encoder(base_dir: Path) -> PreTrainedModel:
    """The base encoder from a local directory, without BERT's unused pooler layer.

    Transformers warns that the checkpoint's pooler weights go unused; that is the intent
    here, so its logging is quietened for the duration of the load.
    """
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoModel.from_pretrained(  # type: ignore[no-any-return]  # untyped factory
            str(base_dir), local_files_only=True, add_pooling_layer=False
        )
    finally:
        hf_logging.set_verbosity(verbosity)


def lora_config(rank: int, alpha: float, dropout: float, train_layernorm: bool) -> LoraConfig:
    # peft annotates lora_alpha as int but scales by lora_alpha / r: a float alpha is honoured
    """LoRA on every linear layer; LayerNorms optionally trained in full (they are tiny)."""
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # see the comment above
        lora_dropout=dropout,
        target_modules=list(LORA_TARGETS),
        modules_to_save=list(LAYERNORM_MODULES) if train_layernorm else None,
        bias="none",
    )


def add_lora(encoder: PreTrainedModel, config: LoraConfig) -> PeftModel:
    """Wrap the encoder with fresh LoRA weights; only LoRA (and LayerNorms) stay trainable."""
    return get_peft_model(encoder, config)
