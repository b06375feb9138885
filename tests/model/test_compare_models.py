"""``scripts/compare_models.py``: every valid set scored through the serving path, and
earlier scores reused; ``scripts/reliability_chart.py`` drawn from the same sets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from monitor.resources import bundled_artifact
from tests.model.conftest import FIXTURES

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_models.py"


def compare(*args: str | Path) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_models_are_scored_on_every_set_and_earlier_scores_are_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, fixture in [
        ("twitter_fin_sentiment", "sentiment"),
        ("twitter_fin_topic", "topic"),
        ("sentfin", "news"),
    ]:
        (data / name).symlink_to(FIXTURES / fixture)
    model = bundled_artifact()
    first = compare(model, "--data", data, "--out", tmp_path / "a")
    scores = json.loads((tmp_path / "a" / "comparison.json").read_text())
    sets = {label for label in scores[model.name] if not label.startswith("_")}
    assert len(sets) == 5
    assert all(scores[model.name][s]["n"] > 0 for s in sets)
    assert scores[model.name]["twitter topic valid"]["bearish_f1"] is None
    assert scores[model.name]["_version"]["name"].startswith(f"{model.name}+")
    assert (tmp_path / "a" / "comparison.png").stat().st_size > 0
    table = (tmp_path / "a" / "comparison.md").read_text()
    assert table.count("\n") == 2 + len(sets) and table.strip() in first

    again = compare(
        "--scored", tmp_path / "a" / "comparison.json", "--data", data, "--out", tmp_path / "b"
    )
    assert json.loads((tmp_path / "b" / "comparison.json").read_text()) == scores
    assert (tmp_path / "b" / "comparison.md").read_text() == table
    assert again.startswith("| set |")  # the table only: no model was scored again


def test_the_reliability_chart_draws_each_model_on_each_sentiment_set(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, fixture in [("twitter_fin_sentiment", "sentiment"), ("sentfin", "news")]:
        (data / name).symlink_to(FIXTURES / fixture)
    out = tmp_path / "reliability.png"
    done = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "reliability_chart.py"), str(bundled_artifact()),
         str(bundled_artifact("finmon-minilm-v5")), "--data", str(data), "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0 and f"wrote {out}" in done.stdout
