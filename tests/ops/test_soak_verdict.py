"""The soak run's targets (bench/soak.py `verdict`), judged on made-up samples."""

from __future__ import annotations

import pytest

from bench.soak import Sample, verdict

WARMUP = 300.0
RATE = 100.0


def run(
    rss: float = 500, rss_slope: float = 0, fds: int = 80, fds_slope: float = 0, lag: float = 50
) -> list[Sample]:
    """Two workers sampled every 10 s for 30 min; values grow by `*_slope` per minute."""
    return [
        Sample(t, w, rss + rss_slope * t / 60, int(fds + fds_slope * t / 60), lag)
        for t in range(0, 1801, 10)
        for w in (0, 1)
    ]


@pytest.mark.parametrize(
    ("samples", "passed"),
    [
        (run(), True),
        (run(rss_slope=0.5), True),  # 12.5 MB over 25 min on 1000 MB: 1.2 %
        (run(rss_slope=3), False),  # 75 MB on 1000 MB: 7.4 %
        (run(fds_slope=0.2), False),  # a descriptor leaked every 5 minutes per worker
        (run(lag=RATE * 20), False),  # two workers' lag summed: 40 s of input
        (run(lag=RATE * 10), True),
    ],
)
def test_targets(samples: list[Sample], passed: bool) -> None:
    assert verdict(samples, warmup_s=WARMUP, rate=RATE).passed is passed


def test_growth_is_measured_after_the_warm_up() -> None:
    warm = [
        Sample(s.at_s, s.worker, s.rss_mb * (0.5 if s.at_s < WARMUP else 1), s.fds, s.lag)
        for s in run()
    ]
    judged = verdict(warm, warmup_s=WARMUP, rate=RATE)
    assert judged.passed and judged.rss_growth_pct == pytest.approx(0)
