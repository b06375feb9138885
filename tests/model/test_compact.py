"""A compacted artifact: LoRA pairs truncated by SVD (optimal, scaling kept), in float16."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.model.artifact import ADAPTER_FILE, read_meta
from monitor.model.batched import load_classifier
from monitor.model.compact import compact_artifact, truncate, widen
from monitor.model.interface import ModelInput
from monitor.resources import bundled_artifact


@settings(max_examples=60, deadline=None)
@given(
    out_dim=st.integers(1, 24),
    in_dim=st.integers(1, 24),
    rank=st.integers(1, 6),
    keep=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_truncation_is_the_best_approximation_of_that_rank(
    out_dim: int, in_dim: int, rank: int, keep: int, seed: int
) -> None:
    keep = min(keep, rank)
    generator = torch.Generator().manual_seed(seed)
    b = torch.randn(out_dim, rank, generator=generator, dtype=torch.float64)
    a = torch.randn(rank, in_dim, generator=generator, dtype=torch.float64)
    b2, a2, kept = truncate(b, a, keep)
    assert b2.shape == (out_dim, keep) and a2.shape == (keep, in_dim)
    full = b @ a
    singular = torch.linalg.svdvals(full)
    error = torch.linalg.matrix_norm(full - b2 @ a2) ** 2
    torch.testing.assert_close(error, (singular[keep:] ** 2).sum(), atol=1e-6, rtol=1e-6)
    assert kept == pytest.approx(float((singular[:keep] ** 2).sum() / (singular**2).sum()))


def test_full_rank_truncation_reproduces_the_update() -> None:
    generator = torch.Generator().manual_seed(3)
    b, a = torch.randn(12, 4, generator=generator), torch.randn(4, 9, generator=generator)
    b2, a2, kept = truncate(b, a, 4)
    torch.testing.assert_close((b2 @ a2).float(), b @ a, atol=1e-5, rtol=1e-5)
    assert kept == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(
    out_dim=st.integers(1, 24),
    in_dim=st.integers(1, 24),
    rank=st.integers(1, 6),
    extra=st.integers(0, 6),
    ratio=st.sampled_from([0.5, 1.0, 2.0]),
    seed=st.integers(0, 2**16),
)
def test_widening_keeps_the_update_and_takes_fresh_directions(
    out_dim: int, in_dim: int, rank: int, extra: int, ratio: float, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    b = torch.randn(out_dim, rank, generator=generator, dtype=torch.float64)
    a = torch.randn(rank, in_dim, generator=generator, dtype=torch.float64)
    fresh = torch.randn(rank + extra, in_dim, generator=generator, dtype=torch.float64)
    b2, a2 = widen(b, a, fresh, ratio)
    assert b2.shape == (out_dim, rank + extra) and a2.shape == fresh.shape
    torch.testing.assert_close(b2 @ a2, ratio * (b @ a))
    assert torch.equal(a2[rank:], fresh[rank:])  # the new directions are LoRA's own start
    assert not b2[:, rank:].any()


@pytest.mark.parametrize("shape", [(2, 5), (4, 6)])
def test_widening_refuses_a_lower_rank_or_another_input(shape: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="cannot widen"):
        widen(torch.ones(3, 3), torch.ones(3, 5), torch.ones(*shape), 1.0)


def test_a_compacted_artifact_loads_and_predicts_like_the_original(tmp_path: Path) -> None:
    source = bundled_artifact("finmon-minilm-v4")  # as training writes it: float32
    rank = json.loads((source / "adapter_config.json").read_text())["r"]
    out = tmp_path / "compact"
    assert compact_artifact(source, out, rank) == pytest.approx(1.0)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["lora_alpha"] / config["r"] == pytest.approx(
        json.loads((source / "adapter_config.json").read_text())["lora_alpha"] / rank
    )
    assert (out / ADAPTER_FILE).stat().st_size < 0.6 * (source / ADAPTER_FILE).stat().st_size
    assert read_meta(out)["name"] == "compact"
    texts = [ModelInput("Acme shares slump after a profit warning"), ModelInput("Fed holds")]
    before, after = (load_classifier(p, device="cpu").classify(texts) for p in (source, out))
    assert [r.sentiment for r in before] == [r.sentiment for r in after]
    for x, y in zip(before, after, strict=True):
        assert x.sentiment_score == pytest.approx(y.sentiment_score, abs=0.01)


def test_a_rank_above_the_adapters_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="between 1 and the adapter's rank"):
        compact_artifact(bundled_artifact(), tmp_path / "x", 1000)
    assert not (tmp_path / "x").exists()
