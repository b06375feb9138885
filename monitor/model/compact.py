"""A LoRA adapter at another rank: a smaller copy of an artifact (``truncate``), or a wider
start for training (``widen``).

A base-sized adapter (rank 32 on every Linear of all-mpnet-base-v2) is 21 MB in float32.
Each module's update ``(alpha / r) B A`` is replaced by its best rank-``rank``
approximation (truncated SVD, computed through QR factors of ``B`` and ``Aᵀ``, so no
full-size matrix is formed) with the same scaling, and stored in float16; loading casts it
back to float32 before LoRA is merged. The copy is a new model with a new version hash:
score it rather than assume the original's figures.

``finmon train --init`` at a higher rank (or another alpha) starts from ``widen``: the
same update ``(alpha / r) B A`` with room to grow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from monitor.model.artifact import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_FILE,
    META_FILE,
    read_adapter_config,
    read_meta,
    write_json,
)


def truncate(
    b: torch.Tensor, a: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(B', A', kept)``: the rank-``rank`` product ``B' A'`` closest to ``B A`` in
    Frobenius norm, and the share of ``B A``'s energy (squared singular values) it keeps.
    ``B'`` and ``A'`` always have ``rank`` columns and rows (zero-padded where ``B A`` has
    fewer singular values), the shapes the adapter config declares."""
    qb, rb = torch.linalg.qr(b.double())
    qa, ra = torch.linalg.qr(a.double().T)
    u, s, vt = torch.linalg.svd(rb @ ra.T)
    n = min(rank, s.numel())
    root = s[:n].sqrt()
    b2 = b.new_zeros(b.shape[0], rank, dtype=torch.float64)
    a2 = a.new_zeros(rank, a.shape[1], dtype=torch.float64)
    b2[:, :n] = (qb @ u[:, :n]) * root
    a2[:n] = root[:, None] * (vt[:n] @ qa.T)
    total = float((s**2).sum())
    kept = float((s[:n] ** 2).sum()) / total if total > 0 else 1.0
    return b2, a2, kept


def widen(
    b: torch.Tensor, a: torch.Tensor, fresh_a: torch.Tensor, ratio: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B', A')`` at ``fresh_a``'s rank with ``B' A' = ratio * B A``: ``A``'s rows come
    first, then ``fresh_a``'s remaining rows, and ``B``'s extra columns are zero, as LoRA
    initialises ``B``. So the widened pair starts where the narrow one ended (``ratio``
    carries the change of scaling ``alpha / r``) and its new directions still train (a zero
    row of ``A`` next to a zero column of ``B`` would never get a gradient)."""
    rank, narrow = fresh_a.shape[0], a.shape[0]
    if rank < narrow or fresh_a.shape[1] != a.shape[1]:
        raise ValueError(f"cannot widen {tuple(a.shape)} to {tuple(fresh_a.shape)}")
    b2 = b.new_zeros(b.shape[0], rank, dtype=fresh_a.dtype)
    b2[:, :narrow] = b.to(fresh_a.dtype) * ratio
    a2 = fresh_a.detach().clone()
    a2[:narrow] = a.to(fresh_a.dtype)
    return b2, a2


def compact_artifact(artifact: Path, out: Path, rank: int) -> float:
    """Write ``out``, a copy of ``artifact`` named after ``out`` with every LoRA pair
    truncated to ``rank`` and stored in float16; returns the smallest energy share any
    module keeps."""
    config = read_adapter_config(artifact)
    if not 1 <= rank <= config["r"]:
        raise ValueError(f"rank {rank}: must be between 1 and the adapter's rank {config['r']}")
    adapter = load_file(str(artifact / ADAPTER_FILE))
    compact: dict[str, torch.Tensor] = {}
    worst = 1.0
    for key, tensor in adapter.items():
        if ".lora_A." in key:
            b_key = key.replace(".lora_A.", ".lora_B.")
            compact[b_key], compact[key], kept = truncate(adapter[b_key], tensor, rank)
            worst = min(worst, kept)
        elif ".lora_B." not in key:
            compact[key] = tensor
    shutil.copytree(artifact, out)
    save_file({k: v.half().contiguous() for k, v in compact.items()}, str(out / ADAPTER_FILE))
    # peft scales the update by alpha / r: keep the scaling as r changes
    scaled_alpha = config["lora_alpha"] * rank / config["r"]
    write_json(out / ADAPTER_CONFIG_FILE, {**config, "r": rank, "lora_alpha": scaled_alpha})
    write_json(out / META_FILE, {**read_meta(out), "name": out.name})
    return worst
