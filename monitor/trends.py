"""`finmon trends`: the stored trend windows as a terminal table, a CSV file, or a chart.

Reads `trend_windows` (not the raw items), so it shows any configured window size over the
whole history retention keeps, cheaply. The chart puts the mean sentiment line over stacked
bearish/neutral/bullish volume bars and shades the time each alert was firing, so a negative
spike and the alert it raised are seen at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Engine, func, select

from monitor.db.models import TrendWindowRow, table
from monitor.durations import format_duration
from monitor.windows import ALL_KEY

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLUMNS = [
    "dimension",
    "key",
    "window_start",
    "window_end",
    "items",
    "bearish",
    "neutral",
    "bullish",
    "bearish_share",
    "mean_score",
]
SENTIMENT_COLORS = {"bearish": "#d62728", "neutral": "#b0b0b0", "bullish": "#2ca02c"}
SEVERITY_COLORS = {"info": "#1f77b4", "warning": "#ff7f0e", "critical": "#d62728"}


@dataclass(frozen=True, slots=True)
class TrendQuery:
    """Which windows to show: one key, or the `top` keys with the most items since `since`."""

    dimension: str
    window: timedelta
    key: str | None = None
    since: datetime | None = None
    top: int = 10

    @property
    def window_seconds(self) -> int:
        return int(self.window.total_seconds())


def load_trends(engine: Engine, query: TrendQuery) -> pd.DataFrame:
    """The windows of `query` as a frame with `COLUMNS`, keys in order of item count."""
    t = table(TrendWindowRow).c
    scope = [t.dimension == query.dimension, t.window_seconds == query.window_seconds]
    if query.since is not None:
        scope.append(t.window_end > query.since)
    with engine.connect() as conn:
        keys = _keys(conn, query, scope)
        rows = conn.execute(
            select(
                t.key,
                t.window_start,
                t.window_end,
                t.n_total,
                t.n_bearish,
                t.n_neutral,
                t.n_bullish,
                t.score_sum,
            )
            .where(*scope, t.key.in_(keys))
            .order_by(t.window_start)
        ).all()
    frame = pd.DataFrame(
        rows,
        columns=["key", "window_start", "window_end", "items", *SENTIMENT_COLORS, "score_sum"],
    )
    frame.insert(0, "dimension", query.dimension)
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["bearish_share"] = frame["bearish"] / frame["items"]
    frame["mean_score"] = frame["score_sum"] / frame["items"]
    frame["key"] = pd.Categorical(frame["key"], categories=keys, ordered=True)
    frame = frame.sort_values(["key", "window_start"], kind="stable").reset_index(drop=True)
    frame["key"] = frame["key"].astype(str)
    return frame[COLUMNS]


def _keys(conn: Connection, query: TrendQuery, scope: list[ColumnElement[bool]]) -> list[str]:
    if query.dimension == "all":
        return [ALL_KEY]
    if query.key is not None:
        return [query.key]
    t = table(TrendWindowRow).c
    items = func.sum(t.n_total)
    ranked = select(t.key).where(*scope).group_by(t.key).order_by(items.desc(), t.key)
    return list(conn.scalars(ranked.limit(query.top)))


def format_table(frame: pd.DataFrame, window: timedelta) -> str:
    """One block per key: a heading with its totals, then one line per window."""
    if frame.empty:
        return "no trend windows match"
    blocks = []
    for key, windows in frame.groupby("key", sort=False):
        items = int(windows["items"].sum())
        mean = windows["mean_score"].mul(windows["items"]).sum() / items
        heading = (
            f"{_label(windows['dimension'].iat[0], str(key))}: {items} items in {len(windows)} "
            f"{format_duration(window)} windows, mean score {mean:+.2f}"
        )
        table = pd.DataFrame(
            {
                "window start (UTC)": windows["window_start"].map(
                    lambda ts: ts.strftime("%Y-%m-%d %H:%M")
                ),
                "items": windows["items"],
                "bearish": windows["bearish"],
                "neutral": windows["neutral"],
                "bullish": windows["bullish"],
                "bearish share": windows["bearish_share"].map(
                    lambda share: f"{share:4.0%} {'#' * round(share * 10):<10}"
                ),
                "mean score": windows["mean_score"].map(lambda score: f"{score:+.2f}"),
            }
        )
        blocks.append(f"{heading}\n{table.to_string(index=False)}")
    return "\n\n".join(blocks)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    for column in ("window_start", "window_end"):
        out[column] = out[column].map(lambda ts: ts.isoformat())
    out.to_csv(path, index=False, float_format="%.6f")


def plot_trends(frame: pd.DataFrame, alerts: pd.DataFrame, query: TrendQuery, path: Path) -> Figure:
    """Draw one panel per key to `path`: volume bars by sentiment, the mean score line, and
    a shaded span per row of `alerts` (columns key, rule, severity, start, until, detected;
    see `alerts.spans`). Returns the figure, so tests can look at what was drawn."""
    window = query.window
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    keys = list(dict.fromkeys(frame["key"])) or ["(no data)"]
    figure = Figure(figsize=(11, 1.0 + 2.4 * len(keys)), layout="constrained")
    axes = figure.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    width = window / timedelta(days=1)  # bar width in matplotlib date units (days)
    for ax, key in zip(axes, keys, strict=True):
        windows = frame[frame["key"] == key]
        starts = windows["window_start"].dt.tz_convert(UTC).dt.tz_localize(None)
        bottom = pd.Series(0, index=windows.index)
        for sentiment, color in SENTIMENT_COLORS.items():
            ax.bar(
                starts,
                windows[sentiment],
                width,
                bottom=bottom,
                color=color,
                align="edge",
                edgecolor="white",
                linewidth=0.5,
            )
            bottom = bottom + windows[sentiment]
        ax.set_ylabel("items")
        score = ax.twinx()
        # Reindexed on every window, so a window without items breaks the line.
        line = windows.set_index(starts + window / 2)["mean_score"]
        if not line.empty:
            line = line.reindex(pd.date_range(line.index.min(), line.index.max(), freq=window))
        score.plot(line.index, line.to_numpy(), color="black", marker=".", linewidth=1.2)
        score.axhline(0, color="black", linewidth=0.5, linestyle=":")
        score.set_ylim(-1.05, 1.05)
        score.set_ylabel("mean score")
        for alert in alerts[alerts["key"] == key].itertuples():
            _shade_alert(ax, alert)
        ax.set_title(_label(query.dimension, key), loc="left")
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    axes[-1].set_xlabel("UTC")
    legend = [Patch(color=c, label=s) for s, c in SENTIMENT_COLORS.items()]
    legend += [Patch(color=c, alpha=0.25, label=f"alert: {s}") for s, c in SEVERITY_COLORS.items()]
    figure.suptitle(f"finmon sentiment, {format_duration(window)} windows")
    figure.legend(handles=legend, loc="outside lower center", ncols=6, fontsize="small")
    figure.savefig(path, dpi=110)
    return figure


def _label(dimension: str, key: str) -> str:
    return "all news" if dimension == "all" else f"{dimension} {key}"


def _shade_alert(ax: Axes, alert: Any) -> None:
    """Shade the episode of `alert` (event time), with a line and its rule where it began
    and when it was detected (processing time), which a replay puts long after."""
    start, until = (
        pd.Timestamp(t).tz_convert(UTC).tz_localize(None) for t in (alert.start, alert.until)
    )
    color = SEVERITY_COLORS.get(alert.severity, "#9467bd")
    ax.axvspan(start, until, color=color, alpha=0.25, linewidth=0)
    ax.axvline(start, color=color, linewidth=1.5)
    detected = pd.Timestamp(alert.detected).tz_convert(UTC).strftime("%H:%M")
    ax.annotate(
        f"{alert.rule} ({alert.severity}), detected {detected}",
        (start, 1),
        xycoords=("data", "axes fraction"),
        xytext=(3, -12),
        textcoords="offset points",
        fontsize="small",
        color=color,
    )
