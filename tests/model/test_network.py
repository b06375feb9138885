"""The network's routing of rows to targeted heads (pure tensor logic, a tiny encoder)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import DistilBertConfig, DistilBertModel

from monitor.model.network import MultiTaskModel

LABELS = {"topic": ["a", "b", "c", "d"], "sentiment": ["bearish", "neutral", "bullish"]}


def _models() -> tuple[MultiTaskModel, MultiTaskModel]:
    """One tiny encoder under a plain model and one with a targeted sentiment head."""
    with torch.random.fork_rng():  # the global generator stays as the other tests left it
        torch.manual_seed(0)
        config = DistilBertConfig(vocab_size=64, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
        encoder = DistilBertModel(config)
        plain = MultiTaskModel(encoder, LABELS, dropout=0.0).eval()
        routed = MultiTaskModel(encoder, LABELS, dropout=0.0, targeted_tasks=["sentiment"])
    routed.heads.load_state_dict(plain.heads.state_dict())
    return plain, routed.eval()


PLAIN, ROUTED = _models()


@settings(max_examples=40, deadline=None)
@given(flags=st.lists(st.booleans(), min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_flagged_rows_and_only_they_read_the_targeted_head(flags: list[bool], seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 64, (len(flags), 5), generator=generator)
    mask = torch.ones_like(ids)
    targeted = torch.tensor(flags)
    with torch.no_grad():
        plain = PLAIN(ids, mask)
        routed = ROUTED(ids, mask, targeted=targeted)
        unflagged = ROUTED(ids, mask)
        own = ROUTED.targeted_heads["sentiment"](ROUTED.pool(ids, mask))
    assert torch.equal(routed["topic"], plain["topic"])
    assert torch.equal(unflagged["sentiment"], plain["sentiment"])
    for row, flag in enumerate(flags):
        expected = own[row] if flag else plain["sentiment"][row]
        assert torch.allclose(routed["sentiment"][row], expected, atol=1e-6)


def test_a_model_without_targeted_heads_ignores_the_flags() -> None:
    ids = torch.randint(1, 64, (3, 4))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        flagged = PLAIN(ids, mask, targeted=torch.tensor([True, False, True]))
        plain = PLAIN(ids, mask)
    assert all(torch.equal(flagged[t], plain[t]) for t in LABELS)
