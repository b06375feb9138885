"""Text normalisation shared by training, evaluation and serving.

The model must see the same text shape at train and serve time, so every path calls
:func:`normalise_text`; the same function also gives the key used to find
near-duplicate tweets (ones that differ only by their ``t.co`` link).
"""

from __future__ import annotations

import html
import re

# Links carry no sentiment or topic signal and every tweet has a different random one,
# so they are removed rather than kept as noise the model could memorise.
_URL = re.compile(r"https?://\S+|\bwww\.\S+|\bt\.co/\S+", re.IGNORECASE)


def normalise_text(text: str) -> str:
    """Unescape HTML entities, drop links, and collapse all whitespace (NBSP included)."""
    text = html.unescape(text)
    text = _URL.sub(" ", text)
    return " ".join(text.split())


_MENTION = r"(?<![\w$]){}(?!\w)"


def mention_pattern(word: str, *, exact: bool = False) -> re.Pattern[str]:
    """Matches ``word`` as a whole word (not inside another word, not after ``$``), any
    case unless ``exact``: how a company name or ticker is found in a text."""
    return re.compile(_MENTION.format(re.escape(word)), 0 if exact else re.IGNORECASE)


TARGET_MARKERS = ("<<", ">>")
"""What :func:`mark_mentions` puts around a target's mention: tokens rare in headlines,
so the model can learn them as "this is whom you are asked about"."""


def mark_mentions(text: str, target: str) -> str:
    """``text`` with every whole-word mention of ``target`` (any case, or its cashtag)
    wrapped in :data:`TARGET_MARKERS`; unchanged when the target is not mentioned.

    "Acme gains, Widget slips" asked about Widget becomes "Acme gains, << Widget >> slips":
    the sentiment towards a company sits in the words around its mention, which a
    mean-pooled encoder cannot point at when the target only follows the text."""
    opening, closing = TARGET_MARKERS
    pattern = re.compile(_MENTION.format(r"\$?" + re.escape(target)), re.IGNORECASE)
    return pattern.sub(lambda m: f"{opening} {m.group(0)} {closing}", text)
