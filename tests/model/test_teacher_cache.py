"""The teacher cache: what names an entry, and that a bad entry is computed again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.model.teacher_cache import TeacherCache, entry_key

ROWS = [("Acme beats estimates", ""), ("Acme and Bolt merge", "Bolt")]
KEY = entry_key("t+abc", b"{}", ROWS)


@pytest.mark.parametrize(
    ("case", "other"),
    [
        ("another teacher", entry_key("t+abd", b"{}", ROWS)),
        ("another finmon.json", entry_key("t+abc", b'{"max_length": 64}', ROWS)),
        ("another target", entry_key("t+abc", b"{}", [ROWS[0], (ROWS[1][0], "Acme")])),
        ("rows in another order", entry_key("t+abc", b"{}", ROWS[::-1])),
        ("fields split elsewhere", entry_key("t+abc", b"{}", [("Acme beats", " estimates")])),
        ("one row fewer", entry_key("t+abc", b"{}", ROWS[:1])),
    ],
)
def test_anything_that_decides_the_logits_changes_the_key(case: str, other: str) -> None:
    assert other != KEY, case


def logits(value: float) -> dict[str, np.ndarray]:
    return {"topic": np.full((2, 3), value, dtype=np.float32), "sentiment": np.zeros((2, 3))}


def test_an_entry_is_computed_once_and_read_back_exactly(tmp_path: Path) -> None:
    cache, calls = TeacherCache(tmp_path), []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return logits(0.1)

    first, second = cache.get(KEY, compute), cache.get(KEY, compute)
    assert len(calls) == 1
    assert all(np.array_equal(first[t], second[t]) for t in first)
    assert second["topic"].dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == [f"{KEY}.npz"]  # no temporary file left


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04truncated"])
def test_an_unreadable_entry_is_computed_and_rewritten(tmp_path: Path, content: bytes) -> None:
    (tmp_path / f"{KEY}.npz").write_bytes(content)
    got = TeacherCache(tmp_path).get(KEY, lambda: logits(0.5))
    assert float(got["topic"][0, 0]) == 0.5
    assert float(TeacherCache(tmp_path).get(KEY, lambda: logits(0.9))["topic"][0, 0]) == 0.5


def test_without_a_directory_every_lookup_computes() -> None:
    cache, calls = TeacherCache(None), []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return logits(0.0)

    cache.get(KEY, compute)
    cache.get(KEY, compute)
    assert len(calls) == 2
