"""Feeds to alerts: five outlets carry one story; finmon stores five items, one story, and
the story-counting rule counts it once.

Real parts only: an HTTP server on 127.0.0.1 serves five RSS feeds, `finmon ingest` and
`finmon worker` run as processes against the real broker and PostgreSQL.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from harness.stack import KAFKA_BOOTSTRAP, PG_URL
from harness.worker import REPO, WorkerHarness, free_port, stored_count, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]
OUTLETS = ("Reuters", "Bloomberg", "CNBC", "MarketWatch", "Dow Jones")
STORY = "Boeing plunges after FAA grounds 737 MAX fleet following crash"


def rss(outlet: str, published: datetime, n: int) -> str:
    title = [f"{STORY} - {outlet}", f"UPDATE 1-{STORY}", f"BREAKING: {STORY}"][n % 3]
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>{outlet}</title>
<item><guid>{outlet}-{n}</guid><title>{title}</title>
<link>http://127.0.0.1/{n}</link><pubDate>{format_datetime(published)}</pubDate></item>
</channel></rss>"""


@pytest.fixture
def feeds(tmp_path: Path) -> Iterator[str]:
    """Five feeds served from tmp_path on 127.0.0.1; yields the base URL."""
    now = datetime.now(UTC)
    # a 5-minute window that ended at least 5 minutes ago: it closes once the feeds go quiet
    window = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 5 + 10)
    for n, outlet in enumerate(OUTLETS):
        published = window + timedelta(minutes=1, seconds=20 * n)
        (tmp_path / f"feed{n}.xml").write_text(rss(outlet, published, n))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def write_config(path: Path, base_url: str, run: str) -> Path:
    feeds = "".join(
        f'\n[[ingest.feeds]]\nname = "{run}-{n}"\nurl = "{base_url}/feed{n}.xml"\n'
        f'every = "2s"\ntickers = ["BA"]\n'
        for n in range(len(OUTLETS))
    )
    rule = """
[[alerts.rules]]
name = "{name}"
dimension = "ticker"
window = "5m"
count = "{count}"
min_volume = 3
min_bearish = 3
min_share_increase = 0.3
"""
    path.write_text(
        f'[model]\npath = "{REPO / "models" / "finmon-minilm-v1"}"\n'
        # five items, then nothing: a short idle timeout lets the watermark close the window
        + '[alerts]\nallowed_lateness = "0s"\nidle_timeout = "2s"\n'
        + rule.format(name="ba-items", count="items")
        + rule.format(name="ba-stories", count="stories")
        + feeds
    )
    return path


def test_five_feeds_one_story_counted_once(tmp_path: Path, pg_engine: Engine, feeds: str) -> None:
    run = f"e2e{uuid.uuid4().hex[:6]}"
    config = write_config(tmp_path / "config.toml", feeds, run)
    with WorkerHarness(tmp_path, "ingest", FINMON_CONFIG=str(config)) as worker:
        ingest_port = free_port()
        env = {
            **worker.env,
            "FINMON_INGEST__WEB_PORT": str(ingest_port),
            "FINMON_KAFKA__BOOTSTRAP_SERVERS": json.dumps([KAFKA_BOOTSTRAP]),
            "FINMON_DATABASE__URL": PG_URL,
        }
        log = (tmp_path / "ingest.log").open("ab")
        ingest = subprocess.Popen(
            [sys.executable, "-m", "finmon", "ingest"], env=env, stdout=log, stderr=log, cwd=REPO
        )
        try:
            wait_for(lambda: stored_count(pg_engine) == 5, 120, "five items stored")
            wait_for(lambda: _alerts(pg_engine), 60, "the item-counting alert")
            time.sleep(4)  # more polls and evaluations: nothing may be published or fire twice
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{ingest_port}/metrics").read()
        finally:
            ingest.terminate()
            assert ingest.wait(30) == 0, (tmp_path / "ingest.log").read_text()
    assert stored_count(pg_engine) == 5
    with pg_engine.connect() as conn:
        stories = conn.execute(text("SELECT story_id, n_items, n_sources FROM v_stories")).all()
        window = conn.execute(
            text(
                "SELECT n_total, n_bearish, n_novel, n_novel_bearish FROM trend_windows "
                "WHERE dimension = 'ticker' AND key = 'BA' AND window_seconds = 300"
            )
        ).one()
    assert len(stories) == 1 and stories[0].n_items == 5 and stories[0].n_sources == 5
    assert tuple(window) == (5, 5, 1, 1)
    assert _alerts(pg_engine) == ["ba-items"]  # five copies are no spike when counted once
    published = [
        line
        for line in metrics.decode().splitlines()
        if line.startswith("finmon_ingest_published_total{")
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in published) == 5


def _alerts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT rule FROM alerts ORDER BY rule")))
