"""The episode chart: window scores, baseline, threshold, incident span."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from alerts.detection import assess, baseline_of
from alerts.rules import AlertSettings
from alerts.sources import read_windows
from bench.alerts.delivery import Arrival, run
from bench.alerts.stream import END, START, Stream
from monitor.db.engine import make_engine
from monitor.settings import Settings
from monitor.windows import WindowCounts


def chart(
    settings: Settings,
    alert_settings: AlertSettings,
    arrivals: list[Arrival],
    stream: Stream,
    folder: Path,
    path: Path,
) -> None:
    """One episode (the ticker-only one): window scores, baseline share, threshold, incident."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result_dir = folder / "chart"
    result_dir.mkdir(exist_ok=True)
    result = run(settings, alert_settings, arrivals, stream, result_dir)
    ep = stream.episodes[0]
    rule_name, key = ep.target
    rule = next(r for r in alert_settings.rules if r.name == rule_name)
    engine = make_engine(f"sqlite:///{result_dir / 'bench.sqlite3'}")
    with engine.connect() as conn:
        history = read_windows(conn, rule.dimension, rule.window_seconds, [key], START, END)[key]
    engine.dispose()
    starts = [ep.start - timedelta(hours=1) + rule.window * i for i in range(24)]
    scores, shares, baselines = [], [], []
    for start in starts:
        counts = history.get(start, WindowCounts())
        figures = assess(rule, counts, baseline_of(rule, history, start)).figures
        scores.append(figures.score if counts.n_total >= rule.min_volume else float("nan"))
        shares.append(figures.negative_share if counts.n_total else float("nan"))
        baselines.append(figures.baseline_share)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    x = [s.replace(tzinfo=None) + rule.window / 2 for s in starts]
    top.bar(x, scores, width=rule.window * 0.9, color="#4c72b0", label="window score (z)")
    top.axhline(
        rule.thresholds["warning"],
        color="#d62728",
        linestyle="--",
        label=f"warning threshold ({rule.thresholds['warning']})",
    )
    top.set_ylabel("score")
    bottom.plot(x, shares, "o-", label="bearish share of the window")
    bottom.plot(x, baselines, "-", color="grey", label="baseline share (prior-smoothed)")
    bottom.set_ylabel("share")
    for incident in result.incidents:
        if incident["rule"] == rule_name and incident["key"] == key:
            for ax in (top, bottom):
                ax.axvspan(
                    incident["episode_start"].replace(tzinfo=None),
                    incident["anomalous_until"].replace(tzinfo=None),
                    color="#ff7f0e",
                    alpha=0.2,
                    label="incident (event time)",
                )
            detected = START + timedelta(seconds=(incident["started_at"] - START).total_seconds())
            top.axvline(
                detected.replace(tzinfo=None), color="#ff7f0e", label="detected (processing time)"
            )
    for ax in (top, bottom):
        ax.axvspan(
            ep.start.replace(tzinfo=None),
            ep.end.replace(tzinfo=None),
            fill=False,
            hatch="//",
            edgecolor="black",
            linewidth=0,
            label="injected episode",
        )
        ax.legend(loc="upper left", fontsize="small")
    top.set_title(f"{rule_name} on {key}: {ep.name} (delivery a, in order)")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
