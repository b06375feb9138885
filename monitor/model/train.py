"""Multi-task, multi-source LoRA fine-tuning of the base encoder, optionally distilled.

Recipe (the why of each choice is in the model cards under models/):

* every source is a labelled CSV for one task (``--source TASK=DIR``); rows are normalised
  (links stripped), collapsed to one row per (text, target) with a majority label, and a
  slice of them is held out for early stopping (stratified by label; whole headlines for
  entity sets), so ``valid.csv`` stays untouched until the final report;
* an entity set (SEntFiN layout) gives two training views: every (headline, entity) row
  with the entity as the target, and its single-entity headlines without a target;
* each batch holds one view; the views are sampled with temperature-balanced weights
  ``n ** (1 / T)`` (T = 1: in proportion to size; larger T: closer to uniform), so a small
  news set is not drowned by a large tweet set; within a view, batches are built from
  similar-length rows so dynamic padding wastes little CPU;
* with a teacher (one or more artifacts; each view averages the subset of them that
  scores best on its held-out slice), the loss mixes the gold label's
  cross-entropy with the KL divergence to the teacher's temperature-softened
  probabilities; with ``cross_task`` each source's texts (without targets) also train the
  other task's head on the teacher's soft labels alone: a tweet labelled for topic has a
  sentiment too, and a news headline has a topic although no news set labels topics;
* AdamW with linear warmup and decay; after every epoch each view's held-out slice is
  scored and the best epoch's weights are kept (selection: the mean over tasks of the mean
  over the task's views of (accuracy + macro-F1) / 2);
* afterwards a temperature per head is fitted on the held-out slices when the sentiment
  head's expected calibration error exceeds the threshold, and shipped in the artifact.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from peft import set_peft_model_state_dict
from safetensors.torch import load_file
from tqdm import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from monitor.model.artifact import (
    ADAPTER_FILE,
    META_FILE,
    METRICS_FILE,
    load_heads,
    model_version,
    read_adapter_config,
    read_meta,
    save_artifact,
    write_json,
)
from monitor.model.base import BaseIdentity, identify_base
from monitor.model.batched import BatchedClassifier, load_classifier, resolve_device
from monitor.model.calibration import Temperatures, expected_calibration_error, fit_temperature
from monitor.model.compact import widen
from monitor.model.data import (
    contrast_pairs,
    has_targets,
    headline_rows,
    holdout_split,
    load_split,
    model_label_names,
    resolve_duplicates,
)
from monitor.model.encoding import Features, encode_items, pad_batch
from monitor.model.inference import predict_logits
from monitor.model.interface import TASKS, Task
from monitor.model.metrics import score
from monitor.model.network import MultiTaskModel, add_lora, load_encoder, lora_config
from monitor.model.teacher_cache import TeacherCache, entry_key

# Rows of one task are sorted by length inside pools of this many batches: enough to cut
# padding, small enough that batch composition still changes from epoch to epoch.
_POOL_BATCHES = 50
# A teacher's pass over a set of rows reports progress once per this many rows.
_PASS_CHUNK_ROWS = 2048


def _progress(items: Sequence[Any], desc: str, unit: str) -> tqdm:
    """A progress bar on stderr; refreshed every second on a terminal, every 30 s in a log
    file (which stays short)."""
    return tqdm(items, desc=desc, unit=unit, mininterval=1.0 if sys.stderr.isatty() else 30.0)


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; stored in the artifact so a run can be repeated."""

    epochs: int = 5
    lr: float = 8e-4
    batch_size: int = 32
    seed: int = 13
    # Seeds the choice of rows alone: the --max-train-rows cap and the early-stopping split
    # (``seed`` drives initialisation, sampling and dropout). Runs that warm-start or distil
    # from each other must hold out the same rows, whatever their ``seed``, or a model is
    # selected on rows its predecessor trained on.
    split_seed: int = 13
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
    # where the student trains: "auto" is CUDA when present, else the CPU
    device: str = "auto"
    eval_batch_size: int = 128
    sampling_temperature: float = 1.0
    epoch_batches: int | None = None
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    max_ece: float = 0.05
    target_markers: bool = True
    cross_task: bool = False
    contrast_pairs: bool = False
    choose_teachers: bool = True


class TrainingRefused(ValueError):
    """Inputs of a run that do not fit together, found before any training starts."""


@dataclass(frozen=True)
class Source:
    """A labelled data set for one task: ``DIR/train.csv`` (and ``DIR/valid.csv``)."""

    task: Task
    data_dir: Path
    name: str = ""

    @classmethod
    def parse(cls, spec: str) -> Source:
        """``TASK=DIR`` or ``TASK:NAME=DIR``; NAME defaults to the directory's name."""
        head, sep, data_dir = spec.partition("=")
        task, _, name = head.partition(":")
        if not sep or task not in TASKS or not data_dir:
            raise ValueError(
                f"source {spec!r}: expected TASK=DIR or TASK:NAME=DIR, TASK in {TASKS}"
            )
        path = Path(data_dir)
        return cls(task, path, name or path.name)


@dataclass
class View:
    """What one batch stream trains on: a source's rows, with or without targets; a view
    without ``gold`` labels learns from the teacher's soft labels alone."""

    task: Task
    name: str
    train: pd.DataFrame
    dev: pd.DataFrame
    gold: bool = True
    features: list[Features] = field(default_factory=list)
    dev_features: list[Features] = field(default_factory=list)
    teacher_probs: np.ndarray | None = None


def prepare_views(source: Source, names: Sequence[str], cfg: TrainConfig) -> list[View]:
    """Load a source's train.csv, resolve duplicates, cap it, hold out its dev slice, and
    cut it into views: one for a plain set; two for an entity set (targets, headlines),
    three with ``contrast_pairs`` (:func:`monitor.model.data.contrast_pairs`, made from the
    training rows only, with no held-out slice of their own: the real entity rows judge
    them)."""
    raw = load_split(source.data_dir / "train.csv", source.task, names)
    unique = resolve_duplicates(raw)
    if cfg.max_train_rows is not None and len(unique) > cfg.max_train_rows:
        unique = unique.sample(n=cfg.max_train_rows, random_state=cfg.split_seed)
        unique = unique.reset_index(drop=True)
    train, dev = holdout_split(unique, cfg.holdout_fraction, cfg.split_seed)
    name = f"{source.task}/{source.name}"
    views = [View(source.task, name, train, dev)]
    if has_targets(unique):
        views.append(
            View(source.task, f"{name}/headline", headline_rows(train), headline_rows(dev))
        )
        if cfg.contrast_pairs:
            pairs = contrast_pairs(train, cfg.split_seed)
            views.append(View(source.task, f"{name}/pairs", pairs, pairs.iloc[0:0]))
    return views


def label_names_of(sources: Sequence[Source]) -> dict[str, tuple[str, ...]]:
    """Each head's label names, from its task's first source; every head needs a source."""
    missing = set(TASKS) - {s.task for s in sources}
    if missing:
        raise TrainingRefused(f"no source for task(s) {sorted(missing)}: every head needs data")
    first = {task: next(s for s in sources if s.task == task) for task in TASKS}
    return {task: model_label_names(task, first[task].data_dir) for task in TASKS}


def encode_views(
    views: Sequence[View], tokenizer: PreTrainedTokenizerBase, cfg: TrainConfig
) -> None:
    """Fill each view's features (train and held-out rows); views that share rows share
    their encoding."""

    def encode(frame: pd.DataFrame) -> list[Features]:
        items = [(t, None, g or None) for t, g in zip(frame["text"], frame["target"], strict=True)]
        return encode_items(tokenizer, items, cfg.max_length, cfg.target_markers)

    encoded: dict[int, list[Features]] = {}
    for view in views:
        if id(view.train) not in encoded:
            encoded[id(view.train)] = encode(view.train)
        view.features, view.dev_features = encoded[id(view.train)], encode(view.dev)


def cross_task_views(views: Sequence[View]) -> list[View]:
    """For every view without targets, a view of the same rows for each other task, with
    no gold labels and no held-out slice (the teacher's soft labels are all it learns
    from, and nothing labelled exists to stop on). Entity rows lend nothing: their target
    matters only for sentiment, and their headlines are already a view of their own."""
    return [
        View(task, f"{task}/soft:{view.name}", view.train, view.dev.iloc[0:0], gold=False)
        for view in views
        if view.gold and not has_targets(view.train)
        for task in TASKS
        if task != view.task
    ]


def sampling_weights(sizes: Sequence[int], temperature: float) -> np.ndarray:
    """Temperature-balanced sampling: weight ∝ size ** (1 / T), normalised to sum 1."""
    raw = np.asarray(sizes, dtype=float) ** (1.0 / temperature)
    weights: np.ndarray = raw / raw.sum()
    return weights


def make_batches(
    views: Sequence[list[Features]],
    batch_size: int,
    temperature: float,
    rng: np.random.Generator,
    total: int | None = None,
) -> list[tuple[int, list[int]]]:
    """One epoch of single-view batches, as (view index, row indices), shuffled together.

    The epoch has ``total`` batches, by default as many as one pass over every row would
    take (a shorter epoch suits a warm start, where most rows were learnt already); each
    view gets its share of them by :func:`sampling_weights`, drawing its rows from
    successive random permutations (so a view sampled above its size repeats rows only
    after using all of them). Rows of a view are length-sorted inside pools of
    ``_POOL_BATCHES`` batches."""
    total = total or sum(math.ceil(len(items) / batch_size) for items in views)
    weights = sampling_weights([len(items) for items in views], temperature)
    batches: list[tuple[int, list[int]]] = []
    for v, items in enumerate(views):
        if not items:
            continue
        need = max(1, round(total * weights[v])) * batch_size
        order = np.concatenate(
            [rng.permutation(len(items)) for _ in range(math.ceil(need / len(items)))]
        )[:need]
        pool = batch_size * _POOL_BATCHES
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lambda i: len(items[i]["input_ids"]))
            batches += [
                (v, [int(i) for i in chunk[b : b + batch_size]])
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


def held_out_logits(
    model: MultiTaskModel, views: Sequence[View], pad_id: int, cfg: TrainConfig
) -> dict[str, np.ndarray]:
    """Each view's held-out slice through its task's head (rows with a target through the
    task's targeted head, where it has one), by view name (views without a
    held-out slice are left out): the one pass :func:`dev_scores` and :func:`calibrate`
    share."""
    return {
        view.name: predict_logits(
            model,
            view.dev_features,
            pad_id=pad_id,
            batch_size=cfg.eval_batch_size,
            device=next(model.parameters()).device,
            targeted=(view.dev["target"] != "").to_numpy(),
        )[view.task]
        for view in views
        if view.dev_features
    }


def dev_scores(
    logits: Mapping[str, np.ndarray],
    views: Sequence[View],
    names: Mapping[str, Sequence[str]],
) -> dict[str, dict[str, float | int]]:
    """Each view's held-out slice scored from its :func:`held_out_logits`: accuracy,
    macro-F1 and the rest of the summary."""
    return {
        view.name: score(
            view.dev["label"].to_numpy(), logits[view.name].argmax(axis=1), names[view.task]
        ).summary()
        for view in views
        if view.name in logits
    }


def selection_score(scores: Mapping[str, Mapping[str, float | int]]) -> float:
    """Mean over tasks of the mean over the task's views of (accuracy + macro-F1) / 2, so a
    task with several sources weighs as much as a task with one."""
    by_task: dict[str, list[float]] = {}
    for view, s in scores.items():
        task = view.split("/", 1)[0]
        by_task.setdefault(task, []).append((float(s["accuracy"]) + float(s["macro_f1"])) / 2)
    return float(np.mean([np.mean(values) for values in by_task.values()]))


def choose_teachers(
    dev_probs: Sequence[np.ndarray], labels: np.ndarray, names: Sequence[str]
) -> tuple[int, ...]:
    """The subset of teachers whose averaged probabilities score best, by (accuracy +
    macro-F1) / 2, on a held-out slice; a tie goes to the smaller subset (one pass fewer,
    and no member that adds nothing). Teachers trained for other data can be worse than
    none on some views, so each view gets its own subset."""
    best: tuple[float, tuple[int, ...]] | None = None
    for size in range(1, len(dev_probs) + 1):
        for subset in itertools.combinations(range(len(dev_probs)), size):
            predicted = np.mean([dev_probs[i] for i in subset], axis=0).argmax(axis=1)
            report = score(labels, predicted, names)
            value = (report.accuracy + report.macro_f1) / 2
            if best is None or value > best[0]:
                best = (value, subset)
    assert best is not None  # at least one teacher
    return best[1]


class _Teacher:
    """A teacher artifact, identified (version, ``finmon.json``, temperatures) from its
    files alone; its weights and base are loaded on the first pass the cache lacks, so a
    run whose teachers' passes are all cached never loads a teacher."""

    def __init__(self, path: Path, threads: int | None) -> None:
        self.path = path
        self.threads = threads
        self.meta_bytes = (path / META_FILE).read_bytes()  # part of each cache key
        meta = read_meta(path)
        self.model_version = model_version(path, meta)
        self.temperatures = Temperatures.from_meta(meta)

    @functools.cached_property
    def classifier(self) -> BatchedClassifier:
        return load_classifier(self.path, device="auto", threads=self.threads, max_batch_size=128)


def _teacher_probs(
    teachers: Sequence[Path],
    views: Sequence[View],
    names: Mapping[str, Sequence[str]],
    cfg: TrainConfig,
    cache: TeacherCache,
) -> dict[str, list[str]]:
    """Soft labels for every view's training rows: the average of its chosen teachers'
    probabilities, softened by ``distill_temperature``. Unless ``choose_teachers`` is off
    (then every view averages them all), a view with a held-out slice chooses its
    teachers there (:func:`choose_teachers`); a view without one takes the
    teachers that score best on all of its task's held-out slices together. Each teacher
    reads rows through its own tokenizer, once per set of rows (or never, when ``cache``
    holds that pass). Returns each view's teachers by version."""
    from monitor.model.interface import ModelInput

    models = [_Teacher(path, cfg.threads) for path in teachers]
    passes: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    def logits(teacher: int, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        key = (teacher, id(frame))
        if key not in passes:
            rows = list(zip(frame["text"], frame["target"], strict=True))

            def compute() -> dict[str, np.ndarray]:
                classifier = models[teacher].classifier
                inputs = [ModelInput(text, None, target or None) for text, target in rows]
                chunks = [
                    inputs[start : start + _PASS_CHUNK_ROWS]
                    for start in range(0, len(inputs), _PASS_CHUNK_ROWS)
                ] or [[]]
                parts = [
                    classifier.predict_logits(chunk)
                    for chunk in _progress(
                        chunks, f"{classifier.model_version} on {len(inputs)} rows", "chunk"
                    )
                ]
                return {task: np.concatenate([p[task] for p in parts]) for task in parts[0]}

            entry = entry_key(models[teacher].model_version, models[teacher].meta_bytes, rows)
            passes[key] = cache.get(entry, compute)
        return passes[key]

    def calibrated(teacher: int, frame: pd.DataFrame, task: str) -> np.ndarray:
        scaled = models[teacher].temperatures.scale(
            logits(teacher, frame)[task], task, (frame["target"] != "").to_numpy()
        )
        return torch.from_numpy(scaled).softmax(dim=-1).numpy()

    def choose(task: Task, slices: Sequence[pd.DataFrame]) -> tuple[int, ...]:
        if len(models) == 1 or not slices or not cfg.choose_teachers:
            return tuple(range(len(models)))
        probs = [
            np.concatenate([calibrated(t, frame, task) for frame in slices])
            for t in range(len(models))
        ]
        labels = np.concatenate([frame["label"].to_numpy() for frame in slices])
        return choose_teachers(probs, labels, names[task])

    chosen: dict[str, list[str]] = {}
    for view in views:
        own = [view.dev] if view.gold and len(view.dev) else []
        subset = choose(
            view.task,
            own or [v.dev for v in views if v.task == view.task and v.gold and len(v.dev)],
        )
        softened = [
            torch.from_numpy(logits(t, view.train)[view.task] / cfg.distill_temperature)
            .softmax(dim=-1)
            .numpy()
            for t in subset
        ]
        view.teacher_probs = np.mean(softened, axis=0)
        chosen[view.name] = [models[t].model_version for t in subset]
        tqdm.write(f"teachers of {view.name}: {', '.join(chosen[view.name])}")
    return chosen


def training_loss(
    logits: torch.Tensor,
    labels: torch.Tensor | None,
    soft: torch.Tensor | None,
    cfg: TrainConfig,
) -> torch.Tensor:
    """Cross-entropy on the gold labels, mixed with the KL divergence to the teacher's
    softened probabilities (scaled by T², so its gradients keep their size as T grows);
    rows without gold labels learn from the KL term alone."""
    if soft is None:
        if labels is None:
            raise ValueError("a view without gold labels needs a teacher")
        return F.cross_entropy(logits, labels)
    t = cfg.distill_temperature
    kl = F.kl_div(F.log_softmax(logits / t, dim=-1), soft, reduction="batchmean") * t * t
    if labels is None:
        return kl
    return (1 - cfg.distill_weight) * F.cross_entropy(logits, labels) + cfg.distill_weight * kl


def calibrate(
    logits: Mapping[str, np.ndarray], views: Sequence[View], cfg: TrainConfig
) -> dict[str, Any]:
    """Each head's expected calibration error on the held-out slices (their
    :func:`held_out_logits`), and the temperature
    that minimises the held-out negative log-likelihood when the error is above
    ``max_ece``. A head so calibrated also gets a temperature of its own for targeted
    inputs, fitted on the held-out rows of headlines that name several entities (the only
    ones serving asks about a target, :mod:`monitor.targets`), reported under
    ``targeted``. The temperatures go into the artifact (:func:`temperatures_of`)."""
    report: dict[str, Any] = {}
    for task in TASKS:
        task_views = [v for v in views if v.task == task and v.name in logits]
        if not task_views:
            continue
        task_logits = np.concatenate([logits[v.name] for v in task_views])
        dev = pd.concat([v.dev for v in task_views], ignore_index=True)
        labels = dev["label"].to_numpy()
        before = expected_calibration_error(task_logits, labels)
        temperature = fit_temperature(task_logits, labels) if before > cfg.max_ece else 1.0
        report[task] = {
            "ece_before": before,
            "temperature": temperature,
            "ece_after": expected_calibration_error(task_logits / temperature, labels),
            "rows": len(labels),
        }
        targeted = ((dev["target"] != "") & (dev["n_entities"] > 1)).to_numpy()
        if before > cfg.max_ece and targeted.any():
            multi, multi_labels = task_logits[targeted], labels[targeted]
            own = fit_temperature(multi, multi_labels)
            report[task]["targeted"] = {
                "ece_before": expected_calibration_error(multi / temperature, multi_labels),
                "temperature": own,
                "ece_after": expected_calibration_error(multi / own, multi_labels),
                "rows": int(targeted.sum()),
            }
    return report


def temperatures_of(calibration: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The ``finmon.json`` entries :class:`monitor.model.calibration.Temperatures` reads,
    from a :func:`calibrate` report."""
    entries = {"temperature": {task: c["temperature"] for task, c in calibration.items()}}
    targeted = {t: c["targeted"]["temperature"] for t, c in calibration.items() if "targeted" in c}
    return entries | ({"targeted_temperature": targeted} if targeted else {})


def with_temperatures(meta: Mapping[str, Any], calibration: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with its temperatures replaced by those of a :func:`calibrate` report:
    none of the old ones survive, so a head the report leaves without a targeted
    temperature does not keep one from the artifact the meta came from."""
    kept = {k: v for k, v in meta.items() if k not in ("temperature", "targeted_temperature")}
    return kept | temperatures_of(calibration)


@dataclass(frozen=True)
class Split:
    """What decides a run's early-stopping rows: the held-out fraction, the split seed and
    the row cap applied before the split (``None``: every row). Runs that differ in any of
    them hold out different rows."""

    holdout_fraction: float
    split_seed: int
    max_train_rows: int | None = None

    @classmethod
    def of(cls, cfg: TrainConfig) -> Split:
        return cls(cfg.holdout_fraction, cfg.split_seed, cfg.max_train_rows)

    def config(self, **settings: Any) -> TrainConfig:
        """A training config that splits as this split does, with other ``settings``."""
        return TrainConfig(
            holdout_fraction=self.holdout_fraction,
            split_seed=self.split_seed,
            max_train_rows=self.max_train_rows,
            **settings,
        )

    def __str__(self) -> str:
        cap = "" if self.max_train_rows is None else f" of {self.max_train_rows} rows"
        return f"holdout fraction {self.holdout_fraction}{cap} with split seed {self.split_seed}"


def split_of(meta: dict[str, Any]) -> Split | None:
    """The early-stopping split an artifact was trained with, from its ``finmon.json``;
    ``None`` for an artifact without a training record. Artifacts from before
    ``split_seed`` split with their ``seed``."""
    config = meta.get("training", {}).get("config")
    if not config:
        return None
    seed = config["split_seed"] if "split_seed" in config else config["seed"]
    cap = config.get("max_train_rows")
    return Split(float(config["holdout_fraction"]), int(seed), None if cap is None else int(cap))


def check_same_split(artifacts: Sequence[Path], cfg: TrainConfig) -> None:
    """Refuse an init or teacher artifact trained on another early-stopping split: it has
    seen rows of this run's held-out slices, which would then favour it (as a teacher) or
    flatter the run (as its starting point)."""
    own = Split.of(cfg)
    for artifact in artifacts:
        theirs = split_of(read_meta(artifact))
        if theirs is not None and theirs != own:
            raise TrainingRefused(
                f"{artifact}: trained with {theirs}, this run holds out {own}: its "
                "early-stopping rows would not be held out of it"
            )


def _version_of(artifact: Path) -> str:
    return model_version(artifact, read_meta(artifact))


def check_labels(
    artifact: Path, meta: Mapping[str, Any], names: Mapping[str, Sequence[str]]
) -> None:
    """Refuse an artifact whose heads predict other labels than the sources name."""
    if meta["label_names"] != {task: list(head_names) for task, head_names in names.items()}:
        raise TrainingRefused(f"{artifact}: its label names differ from the training sources'")


def check_init(
    init: Path, names: Mapping[str, Sequence[str]], base: BaseIdentity, cfg: TrainConfig
) -> dict[str, Any]:
    """Refuse, before any teacher pass or epoch, an init artifact this run cannot start
    from: other labels, another base encoder, or an adapter of a higher rank than the
    run's or of per-module ranks; returns its adapter config. (:func:`_warm_start` still
    proves the adapter fits, module by module.)"""
    meta = read_meta(init)
    check_labels(init, meta, names)
    if meta["base"]["weights_sha256"] != base.weights_sha256:
        raise TrainingRefused(
            f"{init}: trained on another base encoder ({meta['base']['name']}, recorded at "
            f"{meta['base']['path']}) than this run's {base.path}; give its base with --base"
        )
    config = read_adapter_config(init)
    if config["r"] > cfg.lora_rank:
        raise TrainingRefused(
            f"{init}: adapter does not fit (rank {config['r']}, above this run's "
            f"{cfg.lora_rank}); to start at a lower rank, compact it first: "
            "scripts/compact_adapter.py"
        )
    return config


def _warm_start(model: MultiTaskModel, init: Path, config: Mapping[str, Any], scale: float) -> None:
    """Start from an artifact's LoRA weights and heads (checked by :func:`check_init`, which
    gives its adapter ``config``), so a new version can add sources without relearning what
    the old one knew (its targeted heads are not carried over). A run at a higher rank, or
    another ``alpha``, starts from the same update (``scale`` is this run's ``alpha / r``;
    :func:`monitor.model.compact.widen`)."""
    ratio = config["lora_alpha"] / config["r"] / scale
    adapter = load_file(str(init / ADAPTER_FILE))
    own = {name.replace(".default", ""): p for name, p in model.encoder.named_parameters()}
    try:
        for key in [k for k in adapter if ".lora_A." in k and k in own]:
            b_key = key.replace(".lora_A.", ".lora_B.")
            adapter[b_key], adapter[key] = widen(adapter[b_key], adapter[key], own[key], ratio)
    except ValueError as error:
        raise TrainingRefused(f"{init}: adapter does not fit ({error})") from error
    misfits = [k for k, v in adapter.items() if k in own and own[k].shape != v.shape]
    result = set_peft_model_state_dict(model.encoder, adapter) if not misfits else None
    if misfits or (result is not None and result.unexpected_keys):
        raise TrainingRefused(f"{init}: adapter does not fit (its LoRA modules or shapes differ)")
    # a targeted head was fitted to the init's frozen encoder, which training moves: not
    # carried over (refit one on the new encoder, monitor.model.refit)
    model.heads.load_state_dict(load_heads(init)[0])


def train(
    sources: Sequence[Source],
    out_dir: Path,
    cfg: TrainConfig,
    base_dir: Path | None = None,
    teachers: Sequence[Path] = (),
    init: Path | None = None,
    teacher_cache: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune (from ``init``'s weights if given), keep the best epoch, calibrate, write
    the artifact; returns the metrics. ``teacher_cache`` keeps the teachers' passes for
    later runs (:mod:`monitor.model.teacher_cache`); it never changes the result."""
    started = time.monotonic()
    check_same_split([*teachers, *([init] if init else [])], cfg)
    rng = np.random.default_rng(cfg.seed)

    names = label_names_of(sources)
    views = [view for source in sources for view in prepare_views(source, names[source.task], cfg)]
    if cfg.cross_task:
        if not teachers:
            raise TrainingRefused("cross-task training learns from a teacher: give one")
        views += cross_task_views(views)

    base = identify_base(base_dir)
    init_config = check_init(init, names, base, cfg) if init is not None else None
    tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=True)
    pad_id = int(tokenizer.pad_token_id)
    encode_views(views, tokenizer, cfg)
    labels = [torch.tensor(view.train["label"].to_numpy()) if view.gold else None for view in views]
    view_teachers = (
        _teacher_probs(teachers, views, names, cfg, TeacherCache(teacher_cache)) if teachers else {}
    )
    # after the teachers' passes, which load a teacher only when the cache lacks one: the
    # student starts the same, on as many threads, whether or not a teacher was loaded
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    labels = [None if t is None else t.to(device) for t in labels]
    soft = [
        None if v.teacher_probs is None else torch.from_numpy(v.teacher_probs).to(device)
        for v in views
    ]

    plain = load_encoder(Path(base.path))
    encoder = add_lora(
        plain,
        lora_config(plain, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.train_layernorm),
    )
    model = MultiTaskModel(encoder, names, dropout=cfg.head_dropout)
    if init is not None and init_config is not None:
        _warm_start(model, init, init_config, cfg.lora_alpha / cfg.lora_rank)
    model.to(device)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    features = [view.features for view in views]
    steps_per_epoch = len(
        make_batches(
            features,
            cfg.batch_size,
            cfg.sampling_temperature,
            np.random.default_rng(0),
            cfg.epoch_batches,
        )
    )
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(cfg.warmup_ratio * total_steps), total_steps
    )

    history: list[dict[str, Any]] = []
    # the best epoch: its selection score, number, trainable weights and held-out logits
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, np.ndarray]] | None = None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        batches = make_batches(
            features, cfg.batch_size, cfg.sampling_temperature, rng, cfg.epoch_batches
        )
        running = 0.0
        progress = _progress(batches, f"epoch {epoch}/{cfg.epochs}", "batch")
        for step, (v, index) in enumerate(progress, start=1):
            batch = {
                name: tensor.to(device)
                for name, tensor in pad_batch([features[v][i] for i in index], pad_id).items()
            }
            teacher = soft[v]
            gold = labels[v]
            loss = training_loss(
                model(**batch)[views[v].task],
                None if gold is None else gold[index],
                None if teacher is None else teacher[index],
                cfg,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item()
            if step % 20 == 0:
                progress.set_postfix(loss=f"{running / step:.4f}")
        logits = held_out_logits(model, views, pad_id, cfg)
        dev = dev_scores(logits, views, names)
        selection = selection_score(dev)
        history.append(
            {
                "epoch": epoch,
                "train_loss": running / len(batches),
                "dev": dev,
                "selection": selection,
                "elapsed_s": round(time.monotonic() - started, 1),
            }
        )
        tqdm.write(
            f"epoch {epoch}: train_loss={running / len(batches):.4f} selection={selection:.4f}"
        )
        for name, summary in dev.items():
            tqdm.write(
                f"  {name}: accuracy={summary['accuracy']:.4f} macro_f1={summary['macro_f1']:.4f}"
            )
        if best is None or selection > best[0]:
            state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            best = (selection, epoch, state, logits)
        elif epoch - best[1] > cfg.patience:
            tqdm.write(f"early stop: no dev improvement for {cfg.patience} epoch(s)")
            break

    assert best is not None  # epochs >= 1
    model.load_state_dict(best[2], strict=False)
    model.to("cpu")
    calibration = calibrate(best[3], views, cfg)
    meta = {
        "name": out_dir.name,
        "label_names": {task: list(names[task]) for task in TASKS},
        "base": base.to_dict(),
        "max_length": cfg.max_length,
        "pooling": "mean",
        "targets": True,
        "target_markers": cfg.target_markers,
        **temperatures_of(calibration),
        "training": {
            "config": asdict(cfg),
            "device": str(device),  # the one "auto" resolved to
            # by version (name + weight hash), which identifies them wherever they lie
            "teachers": [_version_of(p) for p in teachers],
            "init": _version_of(init) if init else None,
            "sources": [{"task": s.task, "name": s.name, "dir": str(s.data_dir)} for s in sources],
            "views": {
                view.name: {
                    "train_rows_used": len(view.train),
                    "gold_labels": view.gold,
                    "teachers": view_teachers.get(view.name, []),
                    "early_stopping_rows": len(view.dev),
                    "sampling_weight": float(w),
                }
                for view, w in zip(
                    views,
                    sampling_weights([len(v.train) for v in views], cfg.sampling_temperature),
                    strict=True,
                )
            },
            "early_stopping_split": (
                f"{cfg.holdout_fraction:.0%} of each source's train after URL-stripping and "
                "dedup: stratified by label, or by whole headline for entity sets"
            ),
        },
    }
    save_artifact(out_dir, model, meta)
    metrics = {
        "best_epoch": best[1],
        "history": history,
        "calibration": calibration,
        "train_wall_s": round(time.monotonic() - started, 1),
    }
    write_json(out_dir / METRICS_FILE, metrics)
    return metrics
