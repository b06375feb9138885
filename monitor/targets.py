"""Whom an item's sentiment is about: locating each ticker of a multi-ticker item in its
text, so the model can be asked for the sentiment *towards* that ticker (pure, no I/O).

"Acme gains, Widget slips" is good news for one and bad news for the other: counting the
item's one sentiment in both tickers' windows would be wrong for at least one. An item
that names one ticker keeps its own sentiment for it (the item is about that company), and
so does a ticker that cannot be found in the text: there is nothing to point the model at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.contract import NewsItem, extract_cashtags
from monitor.model.interface import Classification, ModelInput
from monitor.model.text import mention_pattern


@dataclass(frozen=True, slots=True)
class TickerSentiment:
    """The sentiment one ticker's windows count for one item."""

    ticker: str
    sentiment: str
    score: float
    target: str | None
    """What the model was asked about (a name or the ticker), or None when the item's own
    sentiment is used."""


def locate_targets(item: NewsItem) -> dict[str, str]:
    """Ticker → the target to ask the model about, for the tickers of an item that names
    two or more; a ticker not found in the text is left out.

    A ticker is found by, in order: the first of the names the message supplies for it
    (`entities`) that occurs in the headline or body as a whole word, case-insensitively
    (the name is the target); its cashtag (`$BA`); the bare symbol as an upper-case word
    of two or more letters (`BA`); the ticker is then the target."""
    if len(item.tickers) < 2:
        return {}
    text = f"{item.headline} {item.body}" if item.body else item.headline
    cashtags = set(extract_cashtags(text))
    targets: dict[str, str] = {}
    for ticker in item.tickers:
        name = next((n for n in item.entities.get(ticker, ()) if _mentions(text, n)), None)
        if name is not None:
            targets[ticker] = name
        elif ticker in cashtags or (len(ticker) >= 2 and _mentions(text, ticker, exact=True)):
            targets[ticker] = ticker
    return targets


def _mentions(text: str, word: str, *, exact: bool = False) -> bool:
    return mention_pattern(word, exact=exact).search(text) is not None


def model_inputs(
    items: Sequence[NewsItem], *, with_targets: bool = True
) -> tuple[list[ModelInput], list[dict[str, str]]]:
    """One batch's model inputs: every item's own (in item order), then one per located
    target (item by item, ticker by ticker); and the located targets of each item. The
    targeted inputs ride in the same classifier call, so they are batched like the rest.
    Without targets (a model not trained with them) every ticker keeps the item's own."""
    targets = [locate_targets(item) if with_targets else {} for item in items]
    inputs = [ModelInput(item.headline, item.body) for item in items]
    inputs += [
        ModelInput(item.headline, item.body, target)
        for item, located in zip(items, targets, strict=True)
        for target in located.values()
    ]
    return inputs, targets


def split_verdicts(
    items: Sequence[NewsItem],
    targets: Sequence[dict[str, str]],
    verdicts: Sequence[Classification],
) -> list[tuple[Classification, tuple[TickerSentiment, ...]]]:
    """The inverse of :func:`model_inputs`: each item's own verdict and the sentiment each
    of its tickers counts (towards the ticker when located, else the item's own)."""
    if len(verdicts) != len(items) + sum(len(t) for t in targets):
        raise ValueError(f"{len(verdicts)} verdicts for {len(items)} items and their targets")
    targeted = iter(verdicts[len(items) :])
    out = []
    for item, own, located in zip(items, verdicts, targets, strict=False):
        towards = {ticker: (target, next(targeted)) for ticker, target in located.items()}
        tickers = []
        for ticker in item.tickers:
            target, verdict = towards.get(ticker, (None, own))
            tickers.append(
                TickerSentiment(ticker, verdict.sentiment, verdict.sentiment_score, target)
            )
        out.append((own, tuple(tickers)))
    return out
