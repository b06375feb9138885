"""One batched forward pass over many encoded items, shared by training and serving."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from monitor.model.encoding import Features, length_sorted_chunks, pad_batch
from monitor.model.network import MultiTaskModel


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 (else fp16) autocast on CUDA; CPU stays in fp32, where autocast is slower."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def predict_logits(
    model: MultiTaskModel,
    items: Sequence[Features],
    *,
    pad_id: int,
    batch_size: int,
    device: torch.device,
    targeted: Sequence[bool] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Raw logits per task (float32), one row per item in the input order; ``targeted``
    (one flag per item: asked about a target) routes rows to the targeted heads
    (:class:`MultiTaskModel`).

    Items are run in length-sorted chunks to cut padding; because pooling ignores
    padding, the chunk an item lands in does not change its result.
    """
    widths = {task: cast(nn.Linear, head).out_features for task, head in model.heads.items()}
    if targeted is not None and len(targeted) != len(items):
        raise ValueError(f"{len(targeted)} targeted flags for {len(items)} items")
    return _batched(model, model, widths, items, pad_id, batch_size, device, targeted)


def pooled_features(
    model: MultiTaskModel,
    items: Sequence[Features],
    *,
    pad_id: int,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """The pooled vector the heads read (float32), one row per item in the input order,
    batched as :func:`predict_logits` batches."""

    def pool(**batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pooled": model.pool(**batch)}

    width = int(cast(Any, model.encoder.config).hidden_size)
    return _batched(model, pool, {"pooled": width}, items, pad_id, batch_size, device)["pooled"]


def _batched(
    model: MultiTaskModel,
    forward: Callable[..., dict[str, torch.Tensor]],
    widths: dict[str, int],
    items: Sequence[Features],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    targeted: Sequence[bool] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``forward``'s outputs (one array per key, ``widths`` columns) over length-sorted
    chunks of ``items``, in eval mode and without gradients, in the input order;
    ``targeted`` flags, when given, go to ``forward`` chunk by chunk."""
    was_training = model.training
    model.eval()
    out = {key: np.zeros((len(items), width), dtype=np.float32) for key, width in widths.items()}
    with torch.inference_mode(), autocast_for(device):
        for chunk in length_sorted_chunks(items, batch_size):
            batch = pad_batch([items[i] for i in chunk], pad_id)
            if targeted is not None:
                batch["targeted"] = torch.tensor([bool(targeted[i]) for i in chunk])
            for key, values in forward(**{k: v.to(device) for k, v in batch.items()}).items():
                out[key][chunk] = values.float().cpu().numpy()
    model.train(was_training)
    return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``, computed stably in float32."""
    scaled = logits.astype(np.float32) / np.float32(temperature)
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    probs: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probs
