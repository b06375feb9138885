"""`finmon sample`: the synthetic news feed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--hours", default=6.0, show_default=True, help="Hours of news to generate.")
@click.option("--per-hour", default=120, show_default=True, help="Background items per hour.")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--end",
    default=None,
    help="ISO timestamp the feed ends at (default: now).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "rss"]),
    default="jsonl",
    show_default=True,
    help="JSON lines (the input contract) or an RSS 2.0 feed (for `finmon ingest`).",
)
def sample(out: Path, hours: float, per_hour: int, seed: int, end: str | None, fmt: str) -> None:
    """Generate a realistic synthetic news feed (JSONL or RSS) with a negative episode."""
    from monitor.sample import SampleSpec, write_jsonl, write_rss

    if end:
        end_at = datetime.fromisoformat(end)
        if end_at.tzinfo is None:
            raise click.BadParameter("--end needs a timezone, e.g. 2026-01-05T16:00:00+00:00")
    else:
        end_at = datetime.now(UTC).replace(second=0, microsecond=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = SampleSpec(end=end_at, hours=hours, per_hour=per_hour, seed=seed)
    count = (write_rss if fmt == "rss" else write_jsonl)(str(out), spec)
    click.echo(f"wrote {count} news items to {out}")
