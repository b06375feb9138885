"""Classification metrics and their text / PNG renderings.

Written with numpy rather than scikit-learn so that serving and evaluation need no
extra dependency; the formulas are the standard ones (macro-F1 is the unweighted mean
of per-class F1, and a class with no support and no predictions scores 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassScore:
    """Precision, recall and F1 of one class, with its number of true rows."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Report:
    """All the numbers one evaluation produces."""

    n: int
    accuracy: float
    macro_f1: float
    per_class: list[ClassScore]
    labels: list[str]
    confusion: list[list[int]]
    """Rows are true labels, columns predictions, both in ``labels`` order."""
    ece: float | None = None
    """Expected calibration error of the probabilities, when they were scored."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the shape ``finmon evaluate --json`` prints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The inverse of :meth:`to_dict` (e.g. a report stored in an artifact's metrics)."""
        return cls(**{**data, "per_class": [ClassScore(**c) for c in data["per_class"]]})

    def summary(self) -> dict[str, float | int]:
        """The headline numbers only, as stored in the artifact's metrics."""
        summary: dict[str, float | int] = {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
        }
        if self.ece is not None:
            summary["ece"] = self.ece
        return summary


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    ratio: np.ndarray = np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)
    return ratio


def score(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> Report:
    """Accuracy, macro-F1, per-class P/R/F1 and the confusion matrix."""
    k = len(labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    precision = _safe_ratio(tp, confusion.sum(axis=0).astype(float))
    recall = _safe_ratio(tp, support.astype(float))
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    n = int(confusion.sum())
    per_class = [
        ClassScore(label, float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]
    return Report(
        n=n,
        accuracy=float(tp.sum() / n) if n else 0.0,
        macro_f1=float(f1.mean()) if k else 0.0,
        per_class=per_class,
        labels=list(labels),
        confusion=confusion.tolist(),
    )


def format_report(report: Report) -> str:
    """A plain-text table for the terminal."""
    width = max(len(label) for label in report.labels)
    lines = [
        f"n={report.n}  accuracy={report.accuracy:.4f}  macro_f1={report.macro_f1:.4f}",
        "",
        f"{'label':<{width}}  precision  recall     f1  support",
    ]
    lines += [
        f"{c.label:<{width}}  {c.precision:9.4f}  {c.recall:6.4f}  {c.f1:.4f}  {c.support:7d}"
        for c in report.per_class
    ]
    lines += ["", "confusion matrix (rows: true, columns: predicted, in label order above)"]
    cell = max(len(str(v)) for row in report.confusion for v in row) + 1
    lines += [
        f"{label:<{width}} " + "".join(f"{v:>{cell}}" for v in row)
        for label, row in zip(report.labels, report.confusion, strict=True)
    ]
    return "\n".join(lines)


def plot_confusion(report: Report, path: Path, title: str) -> None:
    """Save the row-normalised confusion matrix (counts annotated) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot's import
    import matplotlib.pyplot as plt

    counts = np.asarray(report.confusion)
    rates = _safe_ratio(counts.astype(float), counts.sum(axis=1, keepdims=True).astype(float))
    k = len(report.labels)
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), report.labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), report.labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\nacc={report.accuracy:.3f}  macro-F1={report.macro_f1:.3f}")
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                colour = "white" if rates[i, j] > 0.5 else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=6, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="row share")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
