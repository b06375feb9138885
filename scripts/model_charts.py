"""Confusion matrices of an artifact's valid reports, drawn from its metrics.json (no
inference): one PNG per source and view, beside the artifact.

    python scripts/model_charts.py models/finmon-minilm-v4
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from monitor.model.metrics import Report, plot_confusion


def main(artifact: Path) -> None:
    metrics = json.loads((artifact / "metrics.json").read_text())
    for source, views in metrics["valid"].items():
        for view, data in views.items():
            if view == "dedup":
                continue  # the full view's matrix tells the same story
            path = artifact / f"confusion-{source.replace('/', '-')}-{view}.png"
            plot_confusion(Report.from_dict(data), path, f"{artifact.name}: {source} ({view})")
            print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
