"""`python -m bench.alerts`: see the package's docstring."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench.alerts
from alerts.rules import AlertSettings
from bench.alerts.chart import chart
from bench.alerts.delivery import deliveries, run
from bench.alerts.scoring import Score, report, score
from bench.alerts.stream import HOURS, TICKERS, generate
from monitor.settings import Settings, load_settings


def shipped_alert_settings(
    settings: Settings, folder: Path, overrides: dict[str, Any], count: str | None = None
) -> AlertSettings:
    """The config's `[alerts]` (rules, routes, timing), its channels replaced by one log
    file in `folder` so nothing leaves the machine; with `count`, every rule counts that
    (items or stories)."""
    raw = dict(settings.alerts)
    if count:
        rules = raw.get("rules") or AlertSettings().model_dump()["rules"]
        raw["rules"] = [{**rule, "count": count} for rule in rules]
    raw["channels"] = {"log": {"type": "log", "path": str(folder / "alerts.log")}}
    raw["routes"] = [
        {**route, "channels": ["log"]} for route in raw.get("routes", [{"channels": ["log"]}])
    ]
    return AlertSettings.model_validate({**raw, **overrides})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.alerts", description=(bench.alerts.__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="config.toml (default: the repo's)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chart", type=Path, default=None, help="write the episode chart here")
    parser.add_argument(
        "--notify-max-age",
        default=None,
        help="override alerts.notify_max_age (e.g. 7d: deliver backlogs too)",
    )
    parser.add_argument(
        "--count",
        choices=["items", "stories"],
        default=None,
        help="every rule counts this (default: each rule's own setting)",
    )
    args = parser.parse_args(argv)
    stream = generate(args.seed)
    plans = deliveries(stream, args.seed)
    overrides = {"notify_max_age": args.notify_max_age} if args.notify_max_age else {}
    print(
        f"stream: {len(stream.items)} items over {HOURS} h, {len(TICKERS)} tickers, "
        f"{len(stream.episodes)} episodes; shipped rules from the config"
    )
    scores: dict[str, Score] = {}
    with tempfile.TemporaryDirectory(prefix="finmon-bench-alerts-") as tmp:
        folder = Path(tmp)
        settings = load_settings(args.config, database={"url": f"sqlite:///{folder}/x.sqlite3"})
        for name, arrivals in plans.items():
            sub = folder / str(len(scores))
            sub.mkdir()
            alert_settings = shipped_alert_settings(settings, sub, overrides, args.count)
            print(f"delivering {name} ...", flush=True)
            scores[name] = score(run(settings, alert_settings, arrivals, stream, sub), stream)
        print(report(scores))
        if args.chart:
            chart(
                settings,
                shipped_alert_settings(settings, folder, overrides, args.count),
                plans["a in order (live)"],
                stream,
                folder,
                args.chart,
            )
            print(f"chart: {args.chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
