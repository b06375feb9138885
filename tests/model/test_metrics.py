"""The metric formulas, the text table and the confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.model.metrics import format_report, plot_confusion, score


def test_score_matches_hand_computed_values() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    report = score(y_true, y_pred, ["a", "b", "c"])
    assert report.n == 6
    assert report.accuracy == pytest.approx(4 / 6)
    a, b, c = report.per_class
    assert (a.precision, a.recall) == (pytest.approx(1.0), pytest.approx(2 / 3))
    assert (b.precision, b.recall) == (pytest.approx(0.5), pytest.approx(0.5))
    assert (c.precision, c.recall) == (pytest.approx(0.5), pytest.approx(1.0))
    assert report.macro_f1 == pytest.approx(np.mean([0.8, 0.5, 2 / 3]))
    assert report.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_class_never_seen_nor_predicted_scores_zero() -> None:
    report = score(np.array([0, 0]), np.array([0, 0]), ["a", "b"])
    assert report.per_class[1].f1 == 0.0
    assert report.macro_f1 == pytest.approx(0.5)


def test_text_table_and_png(tmp_path: Path) -> None:
    report = score(np.array([0, 1, 1]), np.array([0, 1, 0]), ["bearish", "bullish"])
    table = format_report(report)
    assert "accuracy=0.6667" in table and "bullish" in table and "confusion" in table
    png = tmp_path / "cm.png"
    plot_confusion(report, png, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
