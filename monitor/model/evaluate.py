"""Scoring a model on a labelled CSV, through the same path serving uses.

The deduplicated view drops rows whose URL-stripped text also occurs in the training
file and repeats within the file itself: the public valid split shares hundreds of
near-duplicate tweets with train, which flatters any model that memorises.

An entity set (``entity`` column) is scored three ways: its single-entity headlines with
no target (headline-level sentiment, what an item without tickers gets), every entity row
with its entity as the target, and the rows of multi-entity headlines with their target
(where "X gains, Y slips" must get two different answers).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from monitor.model.batched import BatchedClassifier
from monitor.model.calibration import expected_calibration_error
from monitor.model.data import dedup_against, has_targets, load_split
from monitor.model.interface import ModelInput, Task
from monitor.model.metrics import Report, score

Entities = Literal["all", "single", "multi"]


def load_eval_frame(
    csv_path: Path,
    task: Task,
    label_names: list[str],
    dedup_reference: Path | None = None,
    *,
    entities: Entities = "all",
    use_targets: bool = True,
) -> pd.DataFrame:
    """The rows to score: deduplicated against ``dedup_reference`` (a train CSV) if given;
    of an entity set, the rows of single- or multi-entity headlines only if asked; the
    targets of an entity set dropped (one row per headline) when ``use_targets`` is false."""
    frame = load_split(csv_path, task, label_names)
    if entities != "all":
        if not has_targets(frame):
            raise ValueError(f"{csv_path}: --entities {entities} needs an entity set")
        multi = frame["n_entities"] > 1
        frame = frame[multi if entities == "multi" else ~multi].reset_index(drop=True)
    if not use_targets and has_targets(frame):
        frame = frame.assign(target="", raw_target="").drop_duplicates("text")
        frame = frame.reset_index(drop=True)
    if dedup_reference is None:
        return frame
    reference = load_split(dedup_reference, task, label_names)
    return dedup_against(frame, reference["text"])


def evaluate_frame(classifier: BatchedClassifier, frame: pd.DataFrame, task: Task) -> Report:
    """Predict every row from its raw text (and raw target) and score against its label;
    the calibrated probabilities' ECE is part of the report."""
    inputs = [
        ModelInput(headline=raw, target=target or None)
        for raw, target in zip(frame["raw"], frame["raw_target"], strict=True)
    ]
    logits = classifier.calibrated_logits(inputs)[task]
    labels = frame["label"].to_numpy()
    report = score(labels, logits.argmax(axis=1), classifier.label_names[task])
    return dataclasses.replace(report, ece=expected_calibration_error(logits, labels))


def evaluate_valid(
    classifier: BatchedClassifier, data_dir: Path, task: Task
) -> dict[str, dict[str, Any]]:
    """The views of DIR/valid.csv the model card reports: full and deduplicated (against
    DIR/train.csv) for a plain set; headline / entity / multi for an entity set."""
    names = classifier.label_names[task]
    valid = data_dir / "valid.csv"
    if has_targets(load_split(valid, task, names)):
        views = {
            "headline": load_eval_frame(valid, task, names, entities="single", use_targets=False),
            "entity": load_eval_frame(valid, task, names),
            "multi": load_eval_frame(valid, task, names, entities="multi"),
        }
    else:
        views = {
            "full": load_eval_frame(valid, task, names),
            "dedup": load_eval_frame(valid, task, names, data_dir / "train.csv"),
        }
    return {
        view: evaluate_frame(classifier, frame, task).to_dict() for view, frame in views.items()
    }


def bearish_f1(report: dict[str, Any]) -> float:
    """The F1 of the bearish class in a sentiment report (what alerts live on)."""
    return float(next(c["f1"] for c in report["per_class"] if c["label"] == "bearish"))
