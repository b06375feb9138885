"""Scoring a model on a labelled CSV, through the same path serving uses.

The deduplicated view drops rows whose URL-stripped text also occurs in the training
file and repeats within the file itself: the public valid split shares hundreds of
near-duplicate tweets with train, which flatters any model that memorises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from monitor.model.batched import BatchedClassifier
from monitor.model.data import Task, dedup_against, load_split
from monitor.model.interface import ModelInput
from monitor.model.metrics import Report, score


def load_eval_frame(
    csv_path: Path, task: Task, label_names: list[str], dedup_reference: Path | None = None
) -> pd.DataFrame:
    """The rows to score; deduplicated against ``dedup_reference`` (a train CSV) if given."""
    frame = load_split(csv_path, task, label_names)
    if dedup_reference is None:
        return frame
    reference = load_split(dedup_reference, task, label_names)
    return dedup_against(frame, reference["text"])


def evaluate_frame(classifier: BatchedClassifier, frame: pd.DataFrame, task: Task) -> Report:
    """Predict every row from its raw text and score against its label."""
    probs = classifier.predict_probs([ModelInput(headline=raw) for raw in frame["raw"]])[task]
    return score(frame["label"].to_numpy(), probs.argmax(axis=1), classifier.label_names[task])


def evaluate_valid(
    classifier: BatchedClassifier, data_dir: Path, task: Task
) -> dict[str, dict[str, Any]]:
    """Full and deduplicated scores on DIR/valid.csv (dedup against DIR/train.csv)."""
    names = classifier.label_names[task]
    valid = data_dir / "valid.csv"
    return {
        view: evaluate_frame(classifier, load_eval_frame(valid, task, names, ref), task).to_dict()
        for view, ref in (("full", None), ("dedup", data_dir / "train.csv"))
    }
