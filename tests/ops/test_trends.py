"""`finmon trends` on SQLite, over a sample replayed through the real processing path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from alerts.spans import load_alert_spans
from finmon.cli import main
from monitor import trends
from monitor.db.engine import make_engine
from monitor.durations import parse_since
from monitor.sample import EPISODE_TICKER, SampleSpec
from monitor.settings import load_settings
from tests.ops.seeding import replay_sample, write_config

END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
SPEC = SampleSpec(end=END)
EPISODE_START = END - timedelta(hours=SPEC.hours * (1 - SPEC.episode_start_fraction))
EPISODE_END = EPISODE_START + timedelta(minutes=SPEC.episode_minutes)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trends")
    path = write_config(folder, f"sqlite:///{folder / 'finmon.sqlite3'}")
    replay_sample(path, END, hours=SPEC.hours)
    return path


def finmon(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["trends", "-c", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_table_shows_the_top_tickers_busiest_first(config: Path) -> None:
    out = finmon(config, "--dimension", "ticker", "--window", "1h", "--top", "3")
    headings = [line for line in out.splitlines() if line.startswith("ticker ")]
    assert len(headings) == 3
    assert headings[0].startswith(f"ticker {EPISODE_TICKER}: ")  # the episode adds 40 items
    assert "window start (UTC)  items  bearish  neutral  bullish" in out


def test_csv_holds_the_windows_of_the_table(config: Path, tmp_path: Path) -> None:
    csv = tmp_path / "ba.csv"
    finmon(config, "--dimension", "ticker", "--key", "BA", "--since", "24h", "--csv", str(csv))
    exported = pd.read_csv(csv)
    assert list(exported.columns) == trends.COLUMNS
    assert set(exported["key"]) == {EPISODE_TICKER}
    assert (exported["items"] == exported[["bearish", "neutral", "bullish"]].sum(axis=1)).all()
    engine = make_engine(load_settings(config).database_url)
    expected = trends.load_trends(
        engine, trends.TrendQuery("ticker", timedelta(hours=1), key=EPISODE_TICKER)
    )
    assert exported["items"].sum() == expected["items"].sum() > SPEC.episode_items
    engine.dispose()


def test_the_chart_shows_the_negative_episode_and_its_alert(config: Path, tmp_path: Path) -> None:
    png = tmp_path / "ba.png"
    finmon(config, "--dimension", "ticker", "--key", "BA", "--window", "5m", "--plot", str(png))
    height, width, _ = imread(png).shape
    assert width > 1000 and height > 300

    engine = make_engine(load_settings(config).database_url)
    ba = trends.TrendQuery("ticker", timedelta(minutes=5), key=EPISODE_TICKER)
    frame = trends.load_trends(engine, ba)
    alerts = load_alert_spans(engine, ba.dimension, [EPISODE_TICKER], ba.since)
    engine.dispose()
    worst = frame.loc[frame["bearish"].idxmax()]
    assert EPISODE_START - timedelta(minutes=5) <= worst["window_start"] < EPISODE_END
    assert worst["bearish_share"] > 0.5 and worst["mean_score"] < -0.5
    assert len(alerts) >= 1, "the alert service should fire on the episode (alerts' defaults)"
    assert (alerts["until"] > EPISODE_START).all() and (alerts["start"] < EPISODE_END).all()
    # the span is the episode in event time: it starts at a window boundary, before it was
    # detected (a replay detects it long after)
    assert (alerts["start"] < alerts["detected"]).all()
    assert all(start.minute % 5 == 0 and start.second == 0 for start in alerts["start"])

    figure = trends.plot_trends(frame, alerts, ba, tmp_path / "again.png")
    bars = figure.axes[0]
    assert bars.get_title(loc="left") == "ticker BA"
    # three stacked bars per window, then one shaded span per alert
    assert len(bars.patches) == 3 * len(frame) + len(alerts)


def test_all_news_and_errors(config: Path) -> None:
    assert finmon(config, "--window", "1h").startswith("all news: ")
    result = CliRunner().invoke(main, ["trends", "-c", str(config), "--window", "2h"])
    assert result.exit_code == 2 and "not a configured window size (1m, 5m, 1h)" in result.output
    result = CliRunner().invoke(main, ["trends", "-c", str(config), "--key", "BA"])
    assert result.exit_code == 2 and "needs --dimension topic or ticker" in result.output


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("24h", datetime(2026, 1, 4, 16, tzinfo=UTC)),
        ("90m", datetime(2026, 1, 5, 14, 30, tzinfo=UTC)),
        ("2026-01-05T09:00:00+01:00", datetime(2026, 1, 5, 8, tzinfo=UTC)),
        ("2026-01-05", datetime(2026, 1, 5, tzinfo=UTC)),
    ],
)
def test_since_is_a_duration_or_a_time(value: str, expected: datetime) -> None:
    assert parse_since(value, datetime(2026, 1, 5, 16, tzinfo=UTC)) == expected


def test_since_rejects_anything_else() -> None:
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", datetime(2026, 1, 5, tzinfo=UTC))
