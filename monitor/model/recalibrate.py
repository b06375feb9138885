"""Recalibration: an artifact's weights under a new name, with its temperatures fitted
again on the held-out rows it was trained without; and :func:`derive`, the path every
artifact made from another without training its encoder takes (recalibration, refitted
heads, :mod:`monitor.model.refit`).

Calibration can change without the weights changing (a finer method, such as the
temperature for targeted inputs, applied to an artifact trained without it), but a model's
probabilities are part of what its version stands for: stored scores are compared window
to window. So a recalibrated artifact gets a name of its own, and its version differs from
the original's by name only (the weight hash, :func:`monitor.model.artifact.model_version`,
stays the same).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monitor.model.artifact import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_FILE,
    HEADS_FILE,
    META_FILE,
    METRICS_FILE,
    load_artifact,
    model_version,
    read_meta,
    save_heads,
    write_json,
)
from monitor.model.held_out import HeldOut, held_out_views
from monitor.model.network import MultiTaskModel
from monitor.model.train import (
    Source,
    TrainConfig,
    TrainingRefused,
    calibrate,
    dev_scores,
    held_out_logits,
    selection_score,
    split_of,
    with_temperatures,
)

Change = Callable[[MultiTaskModel, HeldOut], dict[str, Any]]
"""Changes a loaded artifact's heads in place, on its held-out rows; returns its record."""


def recalibrate(
    artifact: Path,
    sources: Sequence[Source],
    out: Path,
    max_ece: float = TrainConfig.max_ece,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Write to ``out`` (its name becomes the model's) ``artifact``'s weights with
    temperatures fitted on the held-out slices of its own split; returns its metrics, with
    a ``recalibrated`` record (see :func:`derive`)."""
    return derive(artifact, sources, out, "recalibrated", max_ece=max_ece, base_dir=base_dir)


def derive(
    artifact: Path,
    sources: Sequence[Source],
    out: Path,
    kind: str,
    change: Change | None = None,
    max_ece: float = TrainConfig.max_ece,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Write to ``out`` (its name becomes the model's) an artifact derived from
    ``artifact`` without training its encoder: its adapter and adapter config copied, its
    heads copied or, with ``change``, as ``change`` leaves them; temperatures fitted on the
    held-out slices of ``artifact``'s own split, after the change. Not the original's card
    or charts, which describe the original. Returns the metrics (the original's less their
    valid scores, with held-out scores and calibration of the derived model and a ``kind``
    record: what it came from, the change's record, the calibration), also written to
    ``out``, and the record to ``finmon.json`` under ``training``."""
    started = time.monotonic()
    if out.resolve() == artifact.resolve():
        raise TrainingRefused(f"{out}: the artifact itself; write the new artifact elsewhere")
    meta = read_meta(artifact)
    split = split_of(meta)
    if split is None:
        raise TrainingRefused(f"{artifact}: no training record, so its held-out rows are unknown")
    held = held_out_views(sources, artifact, split.config(max_ece=max_ece), base_dir)
    model = load_artifact(artifact, base_dir).model
    changed = change(model, held) if change else {}
    logits = held_out_logits(model, held.views, held.pad_id, held.cfg)
    calibration = calibrate(logits, held.views, held.cfg)
    dev = dev_scores(logits, held.views, held.names)
    out.mkdir(parents=True, exist_ok=True)
    for name in (ADAPTER_CONFIG_FILE, ADAPTER_FILE):
        shutil.copyfile(artifact / name, out / name)
    if change:
        save_heads(out, model)
    else:
        shutil.copyfile(artifact / HEADS_FILE, out / HEADS_FILE)
    record = {
        "from": model_version(artifact, meta),
        **changed,
        "calibration": calibration,
        "wall_s": round(time.monotonic() - started, 1),
    }
    write_json(
        out / META_FILE,
        {
            **with_temperatures(meta, calibration),
            "name": out.name,
            "training": {**meta["training"], kind: record},
        },
    )
    original = artifact / METRICS_FILE
    metrics = json.loads(original.read_text("utf-8")) if original.is_file() else {}
    metrics = {k: v for k, v in metrics.items() if k != "valid"}
    metrics |= {
        "dev": dev,
        "selection": selection_score(dev),
        "calibration": calibration,
        kind: record,
    }
    write_json(out / METRICS_FILE, metrics)
    return metrics
