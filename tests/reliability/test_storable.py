"""Property: every item the decoder accepts can be stored in PostgreSQL.

The decoder's own property tests prove it never raises; this one proves the other half of its
promise, against the real database: an accepted item never fails to store. A message that is
accepted but cannot be stored is worse than a rejected one, because the worker retries a batch
that failed to store forever (offsets held), so one such message would stop all progress.
NUL characters, lone surrogates and non-finite numbers are exactly such messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from monitor.contract import NewsItem, decode_news
from monitor.db.store import NewsStore
from monitor.model.interface import ModelInput
from monitor.pipeline_types import ClassifiedItem
from tests.conftest import _truncate
from tests.doubles import KeywordClassifier

pytestmark = [pytest.mark.stack]

NOW = datetime.now(UTC)
ODD = ["\x00", "\ud800", "\udfff", "\u200f", "\u202e", "\ufeff", "\u2028", "🚀", "'", "\\", "$"]
text = st.text(st.characters() | st.sampled_from(ODD), max_size=40)
numbers = st.integers() | st.floats(allow_nan=True, allow_infinity=True)
values = st.recursive(
    st.none() | st.booleans() | numbers | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
nonblank = text.filter(str.strip)
fields = st.fixed_dictionaries(
    {
        "id": nonblank,
        "published_at": st.just((NOW - timedelta(hours=1)).isoformat()),
        "headline": nonblank,
    },
    optional={
        "body": text,
        "source": text,
        "url": text,
        "lang": text,
        "tickers": st.lists(
            st.text(st.characters() | st.sampled_from(ODD), min_size=1, max_size=8)
        ),
    },
)
# Mostly well-formed messages with odd content: rejections are the decoder tests' business.
documents = st.builds(lambda known, unknown: unknown | known, fields, st.dictionaries(text, values))


@pytest.fixture(scope="module")
def store(reliability_engine_session: Engine) -> Iterator[NewsStore]:
    _truncate(reliability_engine_session)
    yield NewsStore(reliability_engine_session, [timedelta(minutes=1), timedelta(hours=1)])
    _truncate(reliability_engine_session)


@settings(max_examples=300)
@given(document=documents)
def test_every_accepted_item_can_be_stored(store: NewsStore, document: dict[str, Any]) -> None:
    raw = json.dumps(document).encode()  # NaN, Infinity and escaped surrogates included
    decoded = decode_news(raw, now=NOW)
    if not isinstance(decoded, NewsItem):
        return
    [verdict] = KeywordClassifier().classify([ModelInput(decoded.headline, decoded.body)])
    result = store.store([ClassifiedItem(decoded, verdict)], now=NOW)
    assert len(result.inserted) + len(result.duplicates) == 1
