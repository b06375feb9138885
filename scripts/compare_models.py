"""Score model artifacts side by side on every labelled valid set, as the model card reports.

    python scripts/compare_models.py models/finmon-minilm-v1 models/finmon-minilm-v2 \
        models/finmon-minilm-v3 models/finmon-minilm-v4 --data ../shared/data \
        --out models/finmon-minilm-v4

`--scored FILE` (repeatable) takes models already scored from an earlier run's
comparison.json instead of scoring them again (a base-sized model takes many minutes on a
CPU); they come first in the table.

Prints one markdown table (accuracy / macro-F1, bearish F1, ECE per set and model) and
writes it as JSON and as a bar chart (PNG) under --out. Each model is scored through the
serving path (`BatchedClassifier`), so the figures are what the pipeline would see.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from monitor.model.batched import load_classifier
from monitor.model.evaluate import (
    Entities,
    bearish_f1,
    evaluate_frame,
    load_eval_frame,
)

# (label, task, directory under --data, entities filter, target use): "target" asks about
# each row's entity; "row" scores each entity row against the headline's own verdict (what a
# model without targets does); "headline" scores each headline once, with no target.
SETS: tuple[tuple[str, str, str, Entities, str], ...] = (
    ("twitter sentiment valid", "sentiment", "twitter_fin_sentiment", "all", "headline"),
    ("twitter topic valid", "topic", "twitter_fin_topic", "all", "headline"),
    ("sentfin single-entity, no target", "sentiment", "sentfin", "single", "headline"),
    ("sentfin multi-entity rows, target", "sentiment", "sentfin", "multi", "target"),
    ("sentfin multi-entity rows, no target", "sentiment", "sentfin", "multi", "row"),
)


def score_model(path: Path, data: Path) -> dict[str, dict[str, Any]]:
    classifier = load_classifier(path, device="cpu", max_batch_size=128)
    results: dict[str, dict[str, Any]] = {"_version": {"name": classifier.model_version}}
    for label, task, directory, entities, use in SETS:
        frame = load_eval_frame(
            data / directory / "valid.csv",
            task,  # type: ignore[arg-type]
            classifier.label_names[task],
            entities=entities,
            use_targets=use != "headline",
        )
        if use == "row":
            frame = frame.assign(raw_target="")
        report = evaluate_frame(classifier, frame, task).to_dict()  # type: ignore[arg-type]
        results[label] = {
            "n": report["n"],
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "ece": report["ece"],
            "bearish_f1": bearish_f1(report) if task == "sentiment" else None,
        }
        print(f"{classifier.model_version} {label}: {report['accuracy']:.4f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scored", type=Path, action="append", default=[])
    args = parser.parse_args()
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    for earlier in args.scored:
        scores.update(json.loads(earlier.read_text()))
    scores.update({m.name: score_model(m, args.data) for m in args.models})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.json").write_text(json.dumps(scores, indent=2) + "\n")
    names = list(scores)
    lines = [
        "| set | " + " | ".join(f"{n} acc / F1 / bearish F1 / ECE" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, *_ in SETS:
        cells = []
        for n in names:
            s = scores[n][label]
            bear = f"{s['bearish_f1']:.3f}" if s["bearish_f1"] is not None else "—"
            cells.append(f"{s['accuracy']:.3f} / {s['macro_f1']:.3f} / {bear} / {s['ece']:.3f}")
        lines.append(f"| {label} (n={scores[names[0]][label]['n']}) | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (args.out / "comparison.md").write_text(table + "\n")
    print(table)

    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(names)
    labels = [label for label, *_ in SETS]
    for i, n in enumerate(names):
        ax.bar(
            [x + i * width for x in range(len(labels))],
            [scores[n][label]["accuracy"] for label in labels],
            width,
            label=scores[n]["_version"]["name"],
        )
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels([label.replace(", ", ",\n") for label in labels], fontsize=8)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("accuracy")
    ax.set_title("finmon models on every valid set")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out / "comparison.png", dpi=110)


if __name__ == "__main__":
    main()
