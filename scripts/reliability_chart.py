"""Reliability diagrams of the sentiment head: confidence against accuracy on each sentiment
valid set, one line per artifact, scored through the serving path (its temperatures).

    python scripts/reliability_chart.py models/finmon-minilm-v5 models/finmon-minilm-v5.1 \
        --data ../shared/data --out models/finmon-minilm-v5.1/reliability.png

A calibrated model's points lie on the diagonal; points below it are over-confident.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from monitor.model.batched import load_classifier
from monitor.model.calibration import expected_calibration_error, reliability
from monitor.model.evaluate import Entities, load_eval_frame
from monitor.model.interface import ModelInput

# (title, directory under --data, entities, ask about each row's entity)
SETS: tuple[tuple[str, str, Entities, bool], ...] = (
    ("twitter sentiment", "twitter_fin_sentiment", "all", False),
    ("SEntFiN single-entity, no target", "sentfin", "single", False),
    ("SEntFiN multi-entity rows, with target", "sentfin", "multi", True),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    fig, axes = plt.subplots(1, len(SETS), figsize=(5 * len(SETS), 5), sharey=True)
    for path in args.models:
        classifier = load_classifier(path, device="cpu", max_batch_size=128)
        names = classifier.label_names["sentiment"]
        for ax, (title, directory, entities, targeted) in zip(axes, SETS, strict=True):
            frame = load_eval_frame(
                args.data / directory / "valid.csv",
                "sentiment",
                names,
                entities=entities,
                use_targets=targeted,
            )
            inputs = [
                ModelInput(headline=raw, target=target or None)
                for raw, target in zip(frame["raw"], frame["raw_target"], strict=True)
            ]
            logits = classifier.calibrated_logits(inputs)["sentiment"]
            labels = frame["label"].to_numpy()
            points = reliability(logits, labels, bins=10)
            ece = expected_calibration_error(logits, labels)
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o",
                label=f"{classifier.model_version} (ECE {ece:.3f})",
            )
            ax.set_title(f"{title} (n={len(labels)})", fontsize=10)
    for ax in axes:
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_xlim(0.3, 1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("confidence (mean of bin)")
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("accuracy")
    fig.suptitle("Sentiment head: reliability on valid, through the serving path")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
