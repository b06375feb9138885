"""When a feed is polled next (pure): its period when healthy, exponential backoff with full
jitter after consecutive errors, never sooner than the server's Retry-After."""

from __future__ import annotations

import random
from datetime import timedelta


def next_delay(
    every: timedelta,
    failures: int,
    max_backoff: timedelta,
    retry_after: timedelta | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """The wait before the next poll. `failures` consecutive errors (0 when the last poll
    succeeded) give a delay drawn uniformly from [every, min(max_backoff, every * 2**n)], so
    many feeds failing together do not retry in lockstep; Retry-After is a floor."""
    delay = every
    if failures > 0:
        ceiling = min(max_backoff, every * (2 ** min(failures, 30)))
        ceiling = max(ceiling, every)
        delay = every + (ceiling - every) * (rng or random).random()
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(max_backoff, every)))
    return delay
