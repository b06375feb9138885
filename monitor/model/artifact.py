"""Saving and loading the adapted model: a LoRA adapter + heads, never the base weights.

Layout of an artifact directory::

    adapter_config.json          peft LoRA config
    adapter_model.safetensors    LoRA matrices (+ the trained LayerNorms)
    heads.safetensors            the linear head of each task (and its targeted head, if any)
    finmon.json                  label names, base identity + SHA-256, max_length, recipe
    metrics.json                 evaluation results written by ``finmon train``

Loading checks the base weights against the recorded SHA-256 first, because an adapter
applied to different base weights produces confident nonsense rather than an error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from monitor.model.base import DEFAULT_BASE_NAME, default_base_dir, identify_base
from monitor.model.network import MultiTaskModel, load_encoder

META_FILE = "finmon.json"
METRICS_FILE = "metrics.json"
HEADS_FILE = "heads.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
TARGETED_PREFIX = "targeted."
"""Where a targeted head's weights sit in ``heads.safetensors`` (``targeted.sentiment.weight``)."""
FORMAT_VERSION = 1


class BaseMismatchError(ValueError):
    """The base encoder on this machine is not the one the artifact was trained on."""


class UnsupportedAdapter(ValueError):
    """An adapter with per-module ranks or alphas: finmon writes one rank and one alpha for
    every module, and its widening, truncation and averaging rely on that."""


@dataclass
class LoadedArtifact:
    """A ready-to-run model (LoRA merged into the base) and what describes it."""

    model: MultiTaskModel
    tokenizer: PreTrainedTokenizerBase
    meta: dict[str, Any]
    version: str

    @property
    def label_names(self) -> dict[str, list[str]]:
        names: dict[str, list[str]] = self.meta["label_names"]
        return names

    @property
    def max_length(self) -> int:
        return int(self.meta["max_length"])


def save_artifact(out_dir: Path, model: MultiTaskModel, meta: dict[str, Any]) -> None:
    """Write the adapter, the heads and ``finmon.json`` (``meta`` plus the format version).

    ``model.encoder`` must be the peft-wrapped encoder; the adapter config records the
    base by name rather than by this machine's path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    # `model.encoder` is typed as a Module; save_artifact's contract makes it a PeftModel
    encoder: PeftModel = model.encoder  # type: ignore[assignment]
    encoder.peft_config["default"].base_model_name_or_path = meta["base"]["name"]
    # The embeddings are frozen, so there is nothing to save there (and peft would look
    # the base name up on the hub to check); peft's generic README is not our model card.
    encoder.save_pretrained(str(out_dir), save_embedding_layers=False)
    (out_dir / "README.md").unlink(missing_ok=True)
    save_heads(out_dir, model)
    write_json(out_dir / META_FILE, {"format": FORMAT_VERSION, **meta})


def save_heads(out_dir: Path, model: MultiTaskModel) -> None:
    """Write the model's heads (``heads.safetensors``) as loading reads them: the task
    heads under their own keys, the targeted heads under :data:`TARGETED_PREFIX` (a model
    without targeted heads writes exactly the task heads)."""
    state = {
        **model.heads.state_dict(),
        **{TARGETED_PREFIX + k: v for k, v in model.targeted_heads.state_dict().items()},
    }
    heads = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(heads, str(out_dir / HEADS_FILE))


def load_heads(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """An artifact's task heads and targeted heads, as :func:`save_heads` wrote them."""
    state = load_file(str(path / HEADS_FILE))
    targeted = {
        k.removeprefix(TARGETED_PREFIX): v
        for k, v in state.items()
        if k.startswith(TARGETED_PREFIX)
    }
    heads = {k: v for k, v in state.items() if not k.startswith(TARGETED_PREFIX)}
    return heads, targeted


def targeted_tasks(targeted_state: Mapping[str, torch.Tensor]) -> list[str]:
    """The tasks that have a targeted head in a state dict of :func:`load_heads`."""
    return sorted({key.split(".", 1)[0] for key in targeted_state})


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_meta(path: Path) -> dict[str, Any]:
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a finmon model artifact (no {META_FILE})")
    meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{meta_file}: unsupported format {meta.get('format')!r}")
    return meta


def read_adapter_config(path: Path) -> dict[str, Any]:
    """The artifact's peft LoRA config, refused (:class:`UnsupportedAdapter`) when its
    rank or alpha varies by module."""
    config: dict[str, Any] = json.loads((path / ADAPTER_CONFIG_FILE).read_text("utf-8"))
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise UnsupportedAdapter(f"{path}: per-module LoRA ranks or alphas are not supported")
    return config


def model_version(path: Path, meta: dict[str, Any]) -> str:
    """``<name>+<12 hex of SHA-256 over adapter and heads>``: changes with any weight."""
    digest = hashlib.sha256()
    for name in (ADAPTER_FILE, HEADS_FILE):
        digest.update((path / name).read_bytes())
    return f"{meta['name']}+{digest.hexdigest()[:12]}"


def check_base(meta: dict[str, Any], base_dir: Path | None) -> Path:
    """Find the base the artifact needs and prove its weights are the recorded ones.

    Without an explicit ``base_dir`` the bundled default is used when the artifact was
    trained on it, else the path recorded at training time.
    """
    recorded = meta["base"]
    if base_dir is None:
        is_default = recorded["name"] == DEFAULT_BASE_NAME
        base_dir = default_base_dir() if is_default else Path(recorded["path"])
    actual = identify_base(base_dir)
    if actual.weights_sha256 != recorded["weights_sha256"]:
        raise BaseMismatchError(
            f"base encoder mismatch: the artifact was trained on {recorded['name']} "
            f"(recorded at {recorded['path']}, weights sha256 {recorded['weights_sha256']}) "
            f"but the base at {actual.path} has weights sha256 {actual.weights_sha256}. "
            "Point --base / base_dir at the original base weights."
        )
    return Path(actual.path)


def load_artifact(path: Path, base_dir: Path | None = None) -> LoadedArtifact:
    """Load an artifact for inference: verify the base, merge LoRA in, attach the heads."""
    path = Path(path)
    meta = read_meta(path)
    base_path = check_base(meta, base_dir)
    encoder = PeftModel.from_pretrained(load_encoder(base_path), str(path)).merge_and_unload()
    heads, targeted = load_heads(path)
    model = MultiTaskModel(
        encoder, meta["label_names"], dropout=0.0, targeted_tasks=targeted_tasks(targeted)
    )
    model.heads.load_state_dict(heads)
    model.targeted_heads.load_state_dict(targeted)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
    return LoadedArtifact(model, tokenizer, meta, model_version(path, meta))
