"""Bad input through the real broker: every case is stored correctly or dead-lettered with a
precise reason, and the worker keeps running.

One worker serves the whole module (starting one loads the model): all the cases are produced
at once, then each test checks one outcome. Limits come from the worker's config, given here
as environment overrides: 6 MiB per message, 20 000 body characters, 10 minutes of future
skew, 30 days of age.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from harness.worker import WorkerHarness, news, read_topic, wait_for
from monitor.db.models import NewsItemRow, NewsItemTickerRow, TrendWindowRow
from tests.conftest import _truncate
from tests.reliability.accounting import PacedProducer
from tests.reliability.conftest import SecretDatabase
from tests.reliability.stack_control import BIG_MESSAGE_BYTES, create_topics

pytestmark = [pytest.mark.stack, pytest.mark.slow]

MAX_MESSAGE_BYTES = 6 * 1024 * 1024
MAX_BODY_CHARS = 20_000
NOW = datetime.now(UTC)
NEW_YORK = timezone(timedelta(hours=-5))
SQL_ID = "x'); DROP TABLE news_items; --"
SQL_HEADLINE = "Robert'); DELETE FROM trend_windows WHERE ('1'='1 $SQL"
UNICODE_HEADLINE = "\u200f\u05de\u05e0\u05d9\u05d5\u05ea $TEVA \u202eup\u202c 🚀📉\x00 rally"
SECRET_ENV = {
    "FINMON_KAFKA__SASL_PASSWORD": f"sasl-{secrets.token_hex(12)}",
    "FINMON_WEBHOOK_SECRET": f"whsec-{secrets.token_hex(12)}",
    "FINMON_SMTP_PASSWORD": f"smtp-{secrets.token_hex(12)}",
}
ALERT_CHANNELS = {  # channels that need the secrets above; nothing listens on port 9
    "channels": {
        "hook": {"type": "webhook", "url": "http://127.0.0.1:9/finmon"},
        "mail": {
            "type": "email",
            "host": "127.0.0.1",
            "port": 9,
            "security": "starttls",
            "username": "finmon",
            "password_env": "FINMON_SMTP_PASSWORD",
            "from_addr": "finmon@example.test",
            "to_addrs": ["desk@example.test"],
        },
    },
    "routes": [{"rules": ["*"], "channels": ["hook", "mail"]}],
}


def doc(item_id: object = "case", **fields: object) -> bytes:
    """A message from a JSON object; a field given as `...` is left out."""
    base: dict[str, object] = {
        "id": item_id,
        "published_at": (NOW - timedelta(minutes=3)).isoformat(),
        "headline": "$ACME wins a large contract",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def at(delta: timedelta) -> str:
    return (NOW + delta).isoformat()


@dataclass(frozen=True)
class Case:
    """One message and its expected outcome: dead-lettered with a reason containing `reason`,
    or (no reason) stored under `stored_id`."""

    name: str
    raw: bytes
    reason: str | None = None
    stored_id: str | None = None


BIG_BODY = "Shares of $ACME moved. " * (5 * 1024 * 1024 // 23)
CASES = [
    Case("invalid JSON", b'{"id": "bad-json", "headline": ', reason="invalid JSON: Expecting"),
    Case("JSON array", b'[{"id": "in-array"}]', reason="JSON value is an array, not an object"),
    Case("JSON string", b'"headline"', reason="JSON value is a string, not an object"),
    Case("JSON number", b"42", reason="JSON value is a number, not an object"),
    Case("JSON null", b"null", reason="JSON value is null, not an object"),
    Case("invalid UTF-8", b'{"id": "bad-utf8", "headline": "caf\xe9"}', "invalid UTF-8 at byte"),
    Case("truncated UTF-8", b'{"id": "cut-utf8", "headline": "\xe2\x82"}', "invalid UTF-8 at"),
    Case("too deeply nested", b'{"x": ' + b"[" * 10**5 + b"]" * 10**5 + b"}", "nested too deeply"),
    Case("NaN", doc("nan", score=float("nan")), reason="NaN is not a JSON number"),
    Case("Infinity", doc("inf", score=float("inf")), reason="Infinity is not a JSON number"),
    Case("integer too long", b'{"id": "long-int", "n": ' + b"9" * 5000 + b"}", "4300 digits"),
    Case(
        "number out of range",
        doc("e400", headline="x").replace(b'"headline"', b'"score": 1e400, "headline"'),
        reason="number 1e400 is out of range",
    ),
    Case("missing id", doc(...), reason="missing required field 'id'"),
    Case("missing headline", doc("no-headline", headline=...), reason="'headline' (or 'title')"),
    Case("missing published_at", doc("no-ts", published_at=...), reason="field 'published_at'"),
    Case("id is a number", doc(42), reason="field 'id' must be a string, got a number"),
    Case("id is empty", doc(""), reason="field 'id' is empty"),
    Case("id is blank", doc("   "), reason="field 'id' is empty"),
    Case("id too long", doc("i" * 300), reason="field 'id' is longer than 256 characters"),
    Case("id with NUL", doc("nul\x00id"), reason="field 'id' contains a NUL character"),
    Case("id lone surrogate", doc("sur\ud800id"), reason="or a lone surrogate"),
    Case("headline is a list", doc("hl-list", headline=["a"]), "'headline' must be a string"),
    Case("headline is empty", doc("hl-empty", headline=""), "'headline' is empty or whitespace"),
    Case("headline is blank", doc("hl-blank", headline=" \t\n "), "is empty or whitespace"),
    Case("published_at number", doc("ts-num", published_at=1764000000), "must be a string"),
    Case("published_at text", doc("ts-text", published_at="yesterday"), "not an ISO 8601"),
    Case("tickers not a list", doc("tk-str", tickers="AAPL"), "'tickers' must be a list"),
    Case("ticker not a string", doc("tk-int", tickers=[1]), "'tickers' must be a list"),
    Case("ticker surrogate", doc("tk-sur", tickers=["\udc00"]), "invalid ticker"),
    Case(
        "50 000 tickers (0.5 MB)",
        doc("tk-50k", tickers=[f"T{i}" for i in range(50_000)]),
        reason="more than 100 distinct tickers ('tickers', 'entities' and cashtags)",
    ),
    Case(
        "body full of cashtags",
        doc("tk-body", body=" ".join(f"$C{i}" for i in range(500))),
        reason="over the ingest.max_tickers limit",
    ),
    Case("body is an object", doc("body-obj", body={"a": 1}), "'body' must be a string"),
    Case("source is a number", doc("src-num", source=5), "'source' must be a string"),
    Case("naive timestamp", doc("naive", published_at="2026-11-28T10:00:00"), "no timezone"),
    Case("far future", doc("future", published_at=at(timedelta(days=1))), "in the future"),
    Case("far past", doc("past", published_at=at(-timedelta(days=40))), "older than"),
    Case(
        "over the size limit",
        doc("huge", body="x" * (MAX_MESSAGE_BYTES + 1024)),
        reason=f"over the {MAX_MESSAGE_BYTES} limit",
    ),
    # stored
    Case("future within skew", doc("skew", published_at=at(timedelta(minutes=5))), None, "skew"),
    Case("old within max_age", doc("old", published_at=at(-timedelta(days=20))), None, "old"),
    Case(
        "other time zone",
        doc("tz", published_at=(NOW - timedelta(minutes=2)).astimezone(NEW_YORK).isoformat()),
        stored_id="tz",
    ),
    Case("title alias", doc("title", headline=..., title="$ACME recalls"), stored_id="title"),
    Case("5 MB body", doc("big-body", body=BIG_BODY), stored_id="big-body"),
    Case(
        "unknown fields",
        doc("extra", sentiment_hint="bullish", meta={"a": [1, {"b": None}]}, **{"k\x00": "v"}),
        stored_id="extra",
    ),
    Case(
        "unicode oddities",
        doc("unicode", headline=UNICODE_HEADLINE, body="a\x00b"),
        None,
        "unicode",
    ),
    Case("lone surrogate text", doc("sur-text", headline="caf\udce9 up"), stored_id="sur-text"),
    Case("SQL in fields", doc(SQL_ID, headline=SQL_HEADLINE, source="'; --"), stored_id=SQL_ID),
    Case(
        "100 tickers, the limit",
        doc("tk-100", tickers=[f"T{i}" for i in range(99)]),  # + $ACME in the headline
        None,
        "tk-100",
    ),
    Case("duplicate, first", doc("dup", headline="$ACME first version"), stored_id="dup"),
]
DUPLICATE_SECOND = doc("dup", headline="$ACME second version, different content")
ALIVE_ID = "alive-after-bad-input"


@dataclass
class Run:
    """What the module's worker did with the cases."""

    worker: WorkerHarness
    engine: Engine
    letters: dict[bytes, dict[str, bytes]] = field(default_factory=dict)
    rss_before_kb: int = 0
    rss_after_kb: int = 0

    def row(self, item_id: str) -> NewsItemRow | None:
        with self.engine.connect() as conn:
            return conn.execute(select(NewsItemRow).where(NewsItemRow.id == item_id)).first()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
    reliability_engine_session: Engine,
    secret_database: SecretDatabase,
) -> Iterator[Run]:
    engine = reliability_engine_session
    _truncate(engine)
    worker = WorkerHarness(
        tmp_path_factory.mktemp("bad-input"),
        "bad",
        FINMON_DATABASE__URL=secret_database.url,
        FINMON_INGEST__MAX_MESSAGE_BYTES=str(MAX_MESSAGE_BYTES),
        FINMON_INGEST__MAX_BODY_CHARS=str(MAX_BODY_CHARS),
        FINMON_INGEST__MAX_FUTURE_SKEW="10m",
        FINMON_INGEST__MAX_AGE="30d",
        FINMON_ALERTS=json.dumps(ALERT_CHANNELS),
        **SECRET_ENV,
    )
    create_topics(
        [worker.input_topic, worker.output_topic, worker.dlq_topic],
        max_message_bytes=BIG_MESSAGE_BYTES,
    )
    state = Run(worker, engine)
    with worker:
        assert worker.process is not None
        warm_up = [(None, news(f"warm-{i}", "$ACME shares rise")) for i in range(8)]
        PacedProducer(worker.input_topic, warm_up).start().join()
        wait_for(lambda: state.row("warm-7") is not None, 120, "warm-up items stored")
        state.rss_before_kb = rss_kb(worker.process.pid)

        messages = [(None, case.raw) for case in CASES]
        PacedProducer(
            worker.input_topic, messages, max_request_size=BIG_MESSAGE_BYTES
        ).start().join()
        expected_letters = {c.raw for c in CASES if c.reason}
        expected_rows = [c.stored_id for c in CASES if c.stored_id]

        def settled() -> bool:
            state.letters = {r.value: dict(r.headers) for r in read_topic(worker.dlq_topic)}
            return expected_letters <= set(state.letters) and all(map(state.row, expected_rows))

        with contextlib.suppress(AssertionError):  # each test then says which case is missing
            wait_for(settled, 180, "every case stored or dead-lettered", every=1.0)
        state.rss_after_kb = rss_kb(worker.process.pid)
        # After all the bad input: a redelivered id with new content, then a good message, on
        # one key so they stay in order.
        PacedProducer(
            worker.input_topic,
            [(b"dup", DUPLICATE_SECOND), (b"dup", news(ALIVE_ID, "$ACME shares rise again"))],
        ).start().join()
        with contextlib.suppress(AssertionError):
            wait_for(lambda: state.row(ALIVE_ID), 90, "the good message after the bad input")
        yield state
        worker.stop(signal.SIGTERM)
    _truncate(engine)


@pytest.mark.parametrize("case", [c for c in CASES if c.reason], ids=lambda c: c.name)
def test_dead_lettered_with_reason(run: Run, case: Case) -> None:
    headers = run.letters.get(case.raw)
    assert headers is not None, f"{case.name}: not on the dead-letter topic"
    assert case.reason is not None
    assert case.reason in headers["finmon-error-reason"].decode()
    assert headers["finmon-source-topic"] == run.worker.input_topic.encode()
    assert int(headers["finmon-source-offset"]) >= 0
    assert int(headers["finmon-source-partition"]) in range(4)


@pytest.mark.parametrize("case", [c for c in CASES if c.stored_id], ids=lambda c: c.name)
def test_stored(run: Run, case: Case) -> None:
    assert case.stored_id is not None
    row = run.row(case.stored_id)
    assert row is not None, f"{case.name}: not stored"
    assert row.sentiment in ("bearish", "neutral", "bullish") and row.topic
    assert case.raw not in run.letters


def test_nothing_else_was_dead_lettered(run: Run) -> None:
    assert set(run.letters) == {c.raw for c in CASES if c.reason}


def test_big_body_is_truncated_and_memory_stays_bounded(run: Run) -> None:
    row = run.row("big-body")
    assert row is not None
    assert row.body_truncated and row.body == BIG_BODY[:MAX_BODY_CHARS]
    assert row.tickers == ["ACME"]
    # A 5 MB and a 6 MB message must not leave the worker much bigger than before them.
    growth_mb = (run.rss_after_kb - run.rss_before_kb) / 1024
    print(f"worker RSS {run.rss_before_kb // 1024} MB -> {run.rss_after_kb // 1024} MB")
    assert growth_mb < 200


def test_ticker_limit_bounds_the_rows_one_item_writes(run: Run) -> None:
    """At `ingest.max_tickers` (the default, 100) an item writes 100 ticker rows and one
    window row per ticker and size; the 50 000-ticker message wrote nothing."""
    keys = [f"T{i}" for i in range(99)]  # and ACME, which other cases name too
    with run.engine.connect() as conn:
        ticker_rows = conn.scalar(select(func.count()).where(NewsItemTickerRow.item_id == "tk-100"))
        window_rows = conn.scalar(
            select(func.count()).where(
                TrendWindowRow.dimension == "ticker", TrendWindowRow.key.in_(keys)
            )
        )
        refused = conn.scalar(
            select(func.count()).where(NewsItemTickerRow.item_id.in_(["tk-50k", "tk-body"]))
        )
    assert ticker_rows == 100
    assert window_rows == 99 * 3  # the 1 min, 5 min and 1 h windows
    assert refused == 0


def test_timestamps_follow_the_configured_policy(run: Run) -> None:
    skew, old, tz = run.row("skew"), run.row("old"), run.row("tz")
    assert skew is not None and old is not None and tz is not None
    assert skew.published_at > NOW and old.published_at < NOW - timedelta(days=19)
    assert tz.published_at.utcoffset() == timedelta(0)
    assert abs(tz.published_at - (NOW - timedelta(minutes=2))) < timedelta(seconds=1)


def test_unknown_fields_are_kept(run: Run) -> None:
    row = run.row("extra")
    assert row is not None
    assert row.extra == {"sentiment_hint": "bullish", "meta": {"a": [1, {"b": None}]}, "k": "v"}


def test_unicode_oddities_survive_and_nul_is_dropped(run: Run) -> None:
    row = run.row("unicode")
    assert row is not None
    assert row.headline == UNICODE_HEADLINE.replace("\x00", "")
    assert row.body == "ab" and row.tickers == ["TEVA"]
    surrogate = run.row("sur-text")
    assert surrogate is not None and surrogate.headline == "caf? up"


def test_sql_in_fields_is_stored_verbatim(run: Run) -> None:
    row = run.row(SQL_ID)
    assert row is not None
    assert row.headline == SQL_HEADLINE and row.source == "'; --" and "SQL" in row.tickers
    assert run.row("warm-0") is not None  # nothing was dropped or deleted


def test_duplicate_id_first_write_wins_and_conflict_is_logged_and_counted(run: Run) -> None:
    row = run.row("dup")
    assert row is not None and row.headline == "$ACME first version"
    assert "duplicate id with different content ignored (first write wins)" in run.worker.logs()
    status, metrics = run.worker.get("/metrics")
    assert status == 200
    [count] = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("finmon_messages_duplicate_total")
    ]
    assert count >= 1


def test_worker_still_running_after_bad_input(run: Run) -> None:
    assert run.worker.process is not None and run.worker.process.poll() is None
    assert run.row(ALIVE_ID) is not None
    assert run.worker.get("/health")[0] == 200
    assert run.worker.get("/ready")[0] == 200
    assert "Traceback" not in run.worker.logs()


def test_secrets_never_reach_the_log(run: Run, secret_database: SecretDatabase) -> None:
    """The worker had a database password, a Kafka SASL password, a webhook secret and an SMTP
    password, all from the environment; none of them may appear in its output."""
    logs = run.worker.logs()
    assert "finmon worker starting" in logs
    for secret in [*SECRET_ENV.values(), secret_database.password]:
        if secret:
            assert secret not in logs
