"""Human durations in config and on the command line: `30s`, `5m`, `1h`, `7d`, `1h30m`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_PART = re.compile(r"(\d+)\s*(ms|s|m|h|d|w)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(value: object) -> timedelta:
    """Parse `value` into a timedelta; numbers are seconds, timedeltas pass through."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '5m' or '1h', got {value!r}")
    text = value.strip().lower().replace(" ", "")
    if not text or _PART.sub("", text):
        raise ValueError(f"not a duration: {value!r} (use e.g. '30s', '5m', '1h', '7d')")
    return sum((int(n) * _UNITS[unit] for n, unit in _PART.findall(text)), start=timedelta())


def format_duration(delta: timedelta) -> str:
    """The shortest exact label for `delta`, e.g. 3600s -> '1h', 90s -> '90s'."""
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_since(value: str, now: datetime) -> datetime:
    """`24h` (a duration back from `now`) or an ISO timestamp (UTC unless it has an offset).

    Shared by every command that takes `--since`."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is neither a duration (24h, 7d) nor an ISO time") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
