"""Turning text into token ids, and token ids into padded batches.

Training, evaluation and serving all go through :func:`encode_items`, so the model sees
the same truncation at every stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from monitor.model.text import mark_mentions

Features = dict[str, list[int]]


# A target longer than this many tokens is cut: company names are short, and the text
# must keep most of the room.
MAX_TARGET_TOKENS = 16

Item = tuple[str, str | None, str | None]
"""(headline, body, target), already normalised; body and target may be absent."""


def encode_item(
    tokenizer: PreTrainedTokenizerBase,
    headline: str,
    body: str | None,
    max_length: int,
    target: str | None = None,
    mark_target: bool = False,
) -> Features:
    """Token ids for one (already normalised) item, cut to ``max_length`` without error.

    Without a target the headline is the first segment and the body the second. When the
    headline fits with room to spare only the body is cut (``only_second``), so the
    headline is kept whole; a headline too long for that leaves ``longest_first`` as the
    only valid strategy.

    With a target the text (headline, then body) is the first segment and the target the
    second, cut to :data:`MAX_TARGET_TOKENS`; only the text is cut beyond that, so the
    model always sees whom it is asked about. With ``mark_target`` (models trained so)
    the target's mentions in the text are also wrapped in markers
    (:func:`~monitor.model.text.mark_mentions`).
    """
    if target:
        text = f"{headline} {body}" if body else headline
        if mark_target:
            text = mark_mentions(text, target)
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
        if len(target_ids) > MAX_TARGET_TOKENS:
            target = tokenizer.decode(target_ids[:MAX_TARGET_TOKENS])
        return dict(tokenizer(text, target, truncation="only_first", max_length=max_length))
    if not body:
        return dict(tokenizer(headline, truncation=True, max_length=max_length))
    headline_len = len(tokenizer(headline, add_special_tokens=False)["input_ids"])
    pair_specials = tokenizer.num_special_tokens_to_add(pair=True)
    strategy = "only_second" if headline_len + pair_specials < max_length else "longest_first"
    return dict(tokenizer(headline, body, truncation=strategy, max_length=max_length))


def encode_items(
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[Item],
    max_length: int,
    mark_target: bool = False,
) -> list[Features]:
    """:func:`encode_item` for many (headline, body, target) items, in input order.

    The items with neither body nor target, usually all of them, go through one batched
    tokenizer call, which is several times faster than item by item. Tokenizing a batch
    without padding gives each item the ids it gets alone (a test checks it)."""
    alone = [i for i, (_, body, target) in enumerate(items) if not body and not target]
    batch: Any = (
        tokenizer([items[i][0] for i in alone], truncation=True, max_length=max_length)
        if alone
        else {}
    )
    batched = {i: {key: values[n] for key, values in batch.items()} for n, i in enumerate(alone)}
    return [
        batched[i]
        if i in batched
        else encode_item(tokenizer, *item[:2], max_length, item[2], mark_target)
        for i, item in enumerate(items)
    ]


def pad_batch(items: Sequence[Features], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest item (dynamic padding), with the attention mask."""
    width = max(len(item["input_ids"]) for item in items)
    fills = {"input_ids": pad_id}
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in items[0]]
    return {
        key: torch.tensor(
            [item[key] + [fills.get(key, 0)] * (width - len(item[key])) for item in items],
            dtype=torch.long,
        )
        for key in keys
    }


def token_balanced_slices(lengths: Sequence[int], parts: int, min_items: int) -> list[list[int]]:
    """One batch's work for ``parts`` single-threaded workers: the indices, length-sorted
    (so each slice pads little), cut into consecutive slices of similar total length.

    Fewer slices when the batch is small: never more than one per ``min_items`` items,
    since a tiny slice costs a thread hand-off for almost no work."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    parts = max(1, min(parts, len(order) // max(min_items, 1)))
    total = sum(lengths)
    slices: list[list[int]] = [[] for _ in range(parts)]
    done = 0
    for position, index in enumerate(order):
        remaining_items = len(order) - position
        # the slice this item's midpoint falls in, kept so every later slice can still fill
        part = min(parts - 1, (done + lengths[index] / 2) * parts // total) if total else 0
        part = max(part, parts - remaining_items)
        slices[int(part)].append(index)
        done += lengths[index]
    return [s for s in slices if s]


def length_sorted_chunks(items: Sequence[Features], size: int) -> list[list[int]]:
    """Indices of ``items`` in chunks of similar length, so little padding is computed."""
    order = sorted(range(len(items)), key=lambda i: len(items[i]["input_ids"]))
    return [order[i : i + size] for i in range(0, len(order), size)]
