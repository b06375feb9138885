"""Multi-task LoRA fine-tuning of the base encoder on the topic and sentiment CSVs.

Recipe (the why of each choice is in models/finmon-minilm-v1/MODEL_CARD.md):

* train rows are normalised (links stripped), collapsed to one row per text with a
  majority label, and a stratified slice of them is held out for early stopping, so
  ``valid.csv`` stays untouched until the final report;
* each batch holds one task; batches of both tasks are shuffled together, which samples
  the tasks in proportion to their size; within a task, batches are built from
  similar-length rows so dynamic padding wastes little CPU;
* AdamW with linear warmup and decay; after every epoch the held-out slice is scored and
  the best epoch's weights are kept.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from monitor.model.artifact import METRICS_FILE, save_artifact, write_json
from monitor.model.base import identify_base
from monitor.model.data import (
    TASKS,
    Task,
    holdout_split,
    load_split,
    model_label_names,
    resolve_duplicates,
)
from monitor.model.encoding import Features, encode_items, pad_batch
from monitor.model.inference import predict_probs
from monitor.model.metrics import score
from monitor.model.network import MultiTaskModel, add_lora, load_encoder, lora_config

# Rows of one task are sorted by length inside pools of this many batches: enough to cut
# padding, small enough that batch composition still changes from epoch to epoch.
_POOL_BATCHES = 50


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; stored in the artifact so a run can be repeated."""

    epochs: int = 5
    lr: float = 8e-4
    batch_size: int = 32
    seed: int = 13
    max_length: int = 96
    lora_rank: int = 32
    lora_alpha: float = 64.0
    lora_dropout: float = 0.1
    train_layernorm: bool = True
    head_dropout: float = 0.1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    holdout_fraction: float = 0.1
    patience: int = 1
    max_train_rows: int | None = None
    threads: int | None = 2
    eval_batch_size: int = 128


@dataclass
class TaskData:
    """One task's splits, texts normalised and labels as indices into the head."""

    train: pd.DataFrame
    dev: pd.DataFrame
    train_rows_raw: int


def prepare_task(task: Task, data_dir: Path, names: tuple[str, ...], cfg: TrainConfig) -> TaskData:
    """Load DIR/train.csv, resolve near-duplicates, cap its size, hold out the dev slice."""
    raw = load_split(data_dir / "train.csv", task, names)
    unique = resolve_duplicates(raw)
    if cfg.max_train_rows is not None and len(unique) > cfg.max_train_rows:
        unique = unique.sample(n=cfg.max_train_rows, random_state=cfg.seed)
        unique = unique.reset_index(drop=True)
    train, dev = holdout_split(unique, cfg.holdout_fraction, cfg.seed)
    return TaskData(train=train, dev=dev, train_rows_raw=len(raw))


def make_batches(
    features: Mapping[str, list[Features]], batch_size: int, rng: np.random.Generator
) -> list[tuple[str, list[int]]]:
    """One epoch of single-task batches, length-bucketed, both tasks shuffled together."""
    batches: list[tuple[str, list[int]]] = []
    for task, items in features.items():
        order = rng.permutation(len(items))
        pool = batch_size * _POOL_BATCHES
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lambda i: len(items[i]["input_ids"]))
            batches += [
                (task, [int(i) for i in chunk[b : b + batch_size]])
                for b in range(0, len(chunk), batch_size)
            ]
    return [batches[i] for i in rng.permutation(len(batches))]


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only; biases and LayerNorm gains are not shrunk to zero."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _dev_scores(
    model: MultiTaskModel,
    dev_features: Mapping[str, list[Features]],
    data: Mapping[str, TaskData],
    names: Mapping[str, tuple[str, ...]],
    pad_id: int,
    cfg: TrainConfig,
) -> dict[str, dict[str, float | int]]:
    scores = {}
    for task, items in dev_features.items():
        probs = predict_probs(
            model,
            items,
            pad_id=pad_id,
            batch_size=cfg.eval_batch_size,
            device=torch.device("cpu"),
        )[task]
        y_true = data[task].dev["label"].to_numpy()
        scores[task] = score(y_true, probs.argmax(axis=1), names[task]).summary()
    return scores


def _selection_score(scores: Mapping[str, Mapping[str, float | int]]) -> float:
    """Mean over tasks of (accuracy + macro-F1) / 2: the quantities the targets are set on."""
    return float(np.mean([(s["accuracy"] + s["macro_f1"]) / 2 for s in scores.values()]))


def train(
    topic_dir: Path,
    sentiment_dir: Path,
    out_dir: Path,
    cfg: TrainConfig,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune, keep the best epoch, write the artifact; returns the training metrics."""
    started = time.monotonic()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    dirs = {"topic": topic_dir, "sentiment": sentiment_dir}
    names: dict[str, tuple[str, ...]] = {t: model_label_names(t, dirs[t]) for t in TASKS}
    data: dict[str, TaskData] = {t: prepare_task(t, dirs[t], names[t], cfg) for t in TASKS}

    base = identify_base(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=True)
    pad_id = int(tokenizer.pad_token_id)

    def encode(frame: pd.DataFrame) -> list[Features]:
        return encode_items(tokenizer, [(text, None) for text in frame["text"]], cfg.max_length)

    train_features: dict[str, list[Features]] = {t: encode(data[t].train) for t in TASKS}
    dev_features: dict[str, list[Features]] = {t: encode(data[t].dev) for t in TASKS}
    train_labels = {task: torch.tensor(data[task].train["label"].to_numpy()) for task in TASKS}

    encoder = add_lora(
        load_encoder(Path(base.path)),
        lora_config(cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.train_layernorm),
    )
    model = MultiTaskModel(encoder, names, dropout=cfg.head_dropout)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    steps_per_epoch = len(make_batches(train_features, cfg.batch_size, np.random.default_rng(0)))
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(cfg.warmup_ratio * total_steps), total_steps
    )

    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        batches = make_batches(train_features, cfg.batch_size, rng)
        running = 0.0
        progress = tqdm(
            batches,
            desc=f"epoch {epoch}/{cfg.epochs}",
            unit="batch",
            mininterval=1.0 if sys.stderr.isatty() else 30.0,  # keep log files short
        )
        for step, (task, index) in enumerate(progress, start=1):
            batch = pad_batch([train_features[task][i] for i in index], pad_id)
            loss = F.cross_entropy(model(**batch)[task], train_labels[task][index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item()
            if step % 20 == 0:
                progress.set_postfix(loss=f"{running / step:.4f}")
        dev = _dev_scores(model, dev_features, data, names, pad_id, cfg)
        selection = _selection_score(dev)
        history.append(
            {
                "epoch": epoch,
                "train_loss": running / len(batches),
                "dev": dev,
                "selection": selection,
                "elapsed_s": round(time.monotonic() - started, 1),
            }
        )
        tqdm.write(f"epoch {epoch}: train_loss={running / len(batches):.4f} dev={dev}")
        if best is None or selection > best[0]:
            state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            best = (selection, epoch, state)
        elif epoch - best[1] > cfg.patience:
            tqdm.write(f"early stop: no dev improvement for {cfg.patience} epoch(s)")
            break

    assert best is not None  # epochs >= 1
    model.load_state_dict(best[2], strict=False)
    meta = {
        "name": out_dir.name,
        "label_names": {task: list(names[task]) for task in TASKS},
        "base": base.to_dict(),
        "max_length": cfg.max_length,
        "pooling": "mean",
        "training": {
            "config": asdict(cfg),
            "data": {
                task: {
                    "dir": str(dirs[task]),
                    "train_rows": data[task].train_rows_raw,
                    "train_rows_used": len(data[task].train),
                    "early_stopping_rows": len(data[task].dev),
                }
                for task in TASKS
            },
            "early_stopping_split": (
                f"stratified {cfg.holdout_fraction:.0%} of train after URL-stripping and "
                "dedup (grouped by normalised text)"
            ),
        },
    }
    save_artifact(out_dir, model, meta)
    metrics = {
        "best_epoch": best[1],
        "history": history,
        "train_wall_s": round(time.monotonic() - started, 1),
    }
    write_json(out_dir / METRICS_FILE, metrics)
    return metrics
