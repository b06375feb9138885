"""Recalibration: an artifact's weights under a new name, with its temperatures fitted
again on the held-out rows it was trained without.

Calibration can change without the weights changing (a finer method, such as the
temperature for targeted inputs, applied to an artifact trained without it), but a model's
probabilities are part of what its version stands for: stored scores are compared window
to window. So a recalibrated artifact gets a name
of its own, and its version differs from the original's by name only (the weight hash,
:func:`monitor.model.artifact.model_version`, stays the same).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
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
    write_json,
)
from monitor.model.held_out import held_out_views
from monitor.model.train import (
    Source,
    TrainConfig,
    TrainingRefused,
    calibrate,
    split_of,
    temperatures_of,
)


def recalibrate(
    artifact: Path,
    sources: Sequence[Source],
    out: Path,
    max_ece: float = TrainConfig.max_ece,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Write to ``out`` (its name becomes the model's) ``artifact``'s weights (its adapter,
    adapter config and heads; not its card or charts, which describe the original) with
    temperatures fitted on the held-out slices of its own split; returns its metrics (the
    original's less their valid scores, with the new calibration and a ``recalibrated``
    record, also in ``finmon.json``), also written to ``out``."""
    started = time.monotonic()
    if out.resolve() == artifact.resolve():
        raise TrainingRefused(f"{out}: the artifact itself; write the recalibration elsewhere")
    meta = read_meta(artifact)
    split = split_of(meta)
    if split is None:
        raise TrainingRefused(f"{artifact}: no training record, so its held-out rows are unknown")
    cfg = TrainConfig(holdout_fraction=split[0], split_seed=split[1], max_ece=max_ece)
    held = held_out_views(sources, artifact, cfg, base_dir)
    model = load_artifact(artifact, base_dir).model
    calibration = calibrate(model, held.views, held.pad_id, held.cfg)
    out.mkdir(parents=True, exist_ok=True)
    for name in (ADAPTER_CONFIG_FILE, ADAPTER_FILE, HEADS_FILE):  # not the original's card
        shutil.copyfile(artifact / name, out / name)
    record = {
        "from": model_version(artifact, meta),
        "calibration": calibration,
        "wall_s": round(time.monotonic() - started, 1),
    }
    kept = {k: v for k, v in meta.items() if k not in ("temperature", "targeted_temperature")}
    write_json(
        out / META_FILE,
        {
            **kept,
            "name": out.name,
            **temperatures_of(calibration),
            "training": {**meta["training"], "recalibrated": record},
        },
    )
    original = artifact / METRICS_FILE
    metrics = json.loads(original.read_text("utf-8")) if original.is_file() else {}
    metrics = {k: v for k, v in metrics.items() if k != "valid"}
    metrics |= {"calibration": calibration, "recalibrated": record}
    write_json(out / METRICS_FILE, metrics)
    return metrics
