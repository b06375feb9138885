"""A model soup: one artifact whose weights are the average of several fine-tuned artifacts
(Wortsman et al., 2022, "Model soups"), served at one model's cost.

Averaging weights, unlike averaging predictions, works only for models that lie in one basin
of the loss: continuations of one artifact with other seeds, settings or ranks. Older
generations of a lineage can sit elsewhere, so the soup is **greedy**: the candidates are
ranked by their own score on the early-stopping slices (the selection score training uses),
and each joins the soup only if the soup's score there does not fall. Every soup is judged
as it ships (at the output rank, in float16), and ``valid.csv`` plays no part.

The average of LoRA updates ``(1/n) Σ s_i B_i A_i`` (``s_i = alpha_i / r_i``) is exactly the
pair ``[s_1 B_1 | … | s_n B_n] / n`` and ``[A_1; …; A_n]`` of rank ``Σ r_i``; it is cut back
to the output rank by :func:`monitor.model.compact.truncate`. LayerNorm weights and the heads
are plain averages.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from monitor.model.artifact import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_FILE,
    HEADS_FILE,
    META_FILE,
    METRICS_FILE,
    load_artifact,
    load_heads,
    model_version,
    read_adapter_config,
    read_meta,
    targeted_tasks,
    write_json,
)
from monitor.model.compact import truncate
from monitor.model.held_out import held_out_views
from monitor.model.train import (
    Source,
    Split,
    TrainConfig,
    TrainingRefused,
    calibrate,
    check_same_split,
    dev_scores,
    held_out_logits,
    selection_score,
    with_temperatures,
)

T = TypeVar("T")

# What every ingredient must share: the soup is one model of one base, input and label set.
_SAME_META = ("label_names", "max_length", "pooling", "targets", "target_markers")
_SAME_ADAPTER = ("target_modules", "modules_to_save", "bias")


def mean_update(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor, float]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, A)`` with ``B A`` the mean of ``scale · B_i A_i`` over ``(B_i, A_i, scale)``:
    the pairs side by side (rank ``Σ r_i``), in float64."""
    n = len(pairs)
    b = torch.cat([b_i.double() * (scale / n) for b_i, _, scale in pairs], dim=1)
    a = torch.cat([a_i.double() for _, a_i, _ in pairs], dim=0)
    return b, a


def greedy_soup(
    ranked: Sequence[T], judge: Callable[[Sequence[T]], float]
) -> tuple[list[T], list[tuple[list[T], float, bool]]]:
    """The soup grown from ``ranked[0]``: each later candidate is tried in turn and kept when
    ``judge`` scores the soup with it at least as high as without. Returns the members and
    every trial as (soup tried, score, kept)."""
    members = [ranked[0]]
    best = judge(members)
    trials = [(list(members), best, True)]
    for candidate in ranked[1:]:
        tried = [*members, candidate]
        value = judge(tried)
        kept = value >= best
        trials.append((tried, value, kept))
        if kept:
            members, best = tried, value
    return members, trials


def check_ingredients(artifacts: Sequence[Path]) -> None:
    """Refuse artifacts that are not one model: another base, labels, input, LoRA layout or
    set of targeted heads."""
    first_meta, first_config = read_meta(artifacts[0]), read_adapter_config(artifacts[0])
    first_targeted = targeted_tasks(load_heads(artifacts[0])[1])
    for artifact in artifacts[1:]:
        meta, config = read_meta(artifact), read_adapter_config(artifact)
        differ = [k for k in _SAME_META if meta.get(k) != first_meta.get(k)]
        if meta["base"]["weights_sha256"] != first_meta["base"]["weights_sha256"]:
            differ.append("base")
        if targeted_tasks(load_heads(artifact)[1]) != first_targeted:
            differ.append("targeted heads")
        differ += [k for k in _SAME_ADAPTER if _as_set(config, k) != _as_set(first_config, k)]
        if differ:
            raise TrainingRefused(
                f"{artifact} and {artifacts[0]} are not one model: their {', '.join(differ)} differ"
            )


def write_soup(artifacts: Sequence[Path], out: Path, rank: int) -> float:
    """Write to ``out`` the uniform average of ``artifacts`` (:func:`check_ingredients`)
    with its LoRA update at ``rank``, in float16, and the first one's metadata under
    ``out``'s name; returns the smallest share of an averaged update's energy kept."""
    configs = [read_adapter_config(a) for a in artifacts]
    adapters = [load_file(str(a / ADAPTER_FILE)) for a in artifacts]
    heads = [load_file(str(a / HEADS_FILE)) for a in artifacts]
    scales = [c["lora_alpha"] / c["r"] for c in configs]
    # the soup keeps the first ingredient's alpha / r, so --init from it scales alike
    scale = scales[0]
    soup: dict[str, torch.Tensor] = {}
    worst = 1.0
    for key in adapters[0]:
        if ".lora_B." in key:
            continue
        if ".lora_A." in key:
            b_key = key.replace(".lora_A.", ".lora_B.")
            b, a = mean_update(
                [(ad[b_key], ad[key], s) for ad, s in zip(adapters, scales, strict=True)]
            )
            b, a, kept = truncate(b, a, rank)
            soup[b_key], soup[key], worst = b / scale, a, min(worst, kept)
        else:
            soup[key] = _mean([ad[key] for ad in adapters])
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in soup.items()}, str(out / ADAPTER_FILE))
    save_file(
        {k: _mean([h[k] for h in heads]).float().contiguous() for k in heads[0]},
        str(out / HEADS_FILE),
    )
    write_json(out / ADAPTER_CONFIG_FILE, {**configs[0], "r": rank, "lora_alpha": scale * rank})
    write_json(out / META_FILE, {**read_meta(artifacts[0]), "name": out.name})
    return worst


def make_soup(
    sources: Sequence[Source],
    candidates: Sequence[Path],
    out: Path,
    cfg: TrainConfig,
    rank: int | None = None,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Score each candidate on the sources' early-stopping slices, grow the greedy soup,
    write it to ``out`` at ``rank`` (default: the highest candidate rank) with its
    calibration and a record of every trial; returns the metrics (also written to ``out``).
    ``cfg`` gives the split (the candidates' own) and the calibration threshold; input
    settings come from the candidates."""
    started = time.monotonic()
    if out.resolve() in {c.resolve() for c in candidates}:
        raise TrainingRefused(f"{out}: a candidate; write the soup elsewhere")
    check_same_split(candidates, cfg)
    check_ingredients(candidates)
    rank = rank or max(read_adapter_config(c)["r"] for c in candidates)
    held = held_out_views(sources, candidates[0], cfg, base_dir)
    views, names, pad_id, cfg = held.views, held.names, held.pad_id, held.cfg

    def selection_of(artifact: Path, label: str) -> float:
        model = load_artifact(artifact, base_dir).model
        logits = held_out_logits(model, views, pad_id, cfg)
        value = selection_score(dev_scores(logits, views, names))
        tqdm.write(f"selection {value:.4f}: {label}")  # scoring a base-sized model takes minutes
        return value

    alone = {c: selection_of(c, str(c)) for c in candidates}
    ranked = sorted(candidates, key=lambda c: -alone[c])
    with tempfile.TemporaryDirectory() as tmp:

        def judge(members: Sequence[Path]) -> float:
            write_soup(members, Path(tmp) / "soup", rank)
            return selection_of(Path(tmp) / "soup", "soup of " + " + ".join(map(str, members)))

        members, trials = greedy_soup(ranked, judge)
    worst = write_soup(members, out, rank)
    model = load_artifact(out, base_dir).model
    logits = held_out_logits(model, views, pad_id, cfg)
    dev = dev_scores(logits, views, names)
    calibration = calibrate(logits, views, cfg)
    versions = {c: model_version(c, read_meta(c)) for c in candidates}
    record = {
        "rank": rank,
        "ingredients": [versions[c] for c in members],
        "candidates": {versions[c]: alone[c] for c in ranked},
        "trials": [
            {"soup": [versions[c] for c in tried], "selection": value, "kept": kept}
            for tried, value, kept in trials
        ],
        "smallest_energy_kept": worst,
    }
    write_json(
        out / META_FILE,
        {
            **with_temperatures(read_meta(out), calibration),
            "training": {
                "config": {**asdict(Split.of(cfg)), "max_ece": cfg.max_ece},
                "sources": [
                    {"task": s.task, "name": s.name, "dir": str(s.data_dir)} for s in sources
                ],
                "soup": record,
            },
        },
    )
    metrics = {
        "soup": record,
        "dev": dev,
        "selection": selection_score(dev),
        "calibration": calibration,
        "wall_s": round(time.monotonic() - started, 1),
    }
    write_json(out / METRICS_FILE, metrics)
    return metrics


def _as_set(config: dict[str, Any], key: str) -> object:
    value = config.get(key)
    return frozenset(value) if isinstance(value, list) else value


def _mean(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.double() for t in tensors]).mean(dim=0)
