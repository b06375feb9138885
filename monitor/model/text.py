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
