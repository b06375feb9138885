"""Story novelty: which stored items are copies of a story already seen (pure, no I/O).

When a story breaks, many outlets carry it within minutes, re-titled ("- Reuters" suffixes,
small edits, re-ordered clauses). Counting every copy as an opinion lets syndication alone
move a window. This module decides, for each new item, whether it retells a story stored in
the horizon before it: the item then joins that story (`story_id` = the story's first stored
item) and is not novel; otherwise it starts a story of its own (`story_id` = its own id).

How two headlines are compared, and why:

- *Normalised tokens*: lower-cased words with the source attribution cut off ("- Reuters",
  "UPDATE 2-", "(Reuters) -"), stop words dropped, plurals and a few irregular verb forms
  folded, and direction verbs ("rises", "gains", "jumps" ... / "falls", "slips" ...) folded
  into one token per direction. A set, so re-ordered clauses compare equal.
- *Candidates by MinHash/LSH*: each token set (its content words: not the direction and
  negation markers) gets a MinHash signature cut into bands; two items are candidates when
  they share at least two bands. Band keys are plain integers, so the store
  keeps them in SQL and finds candidates with an index lookup, across workers and restarts.
- *Verification*: a candidate is the same story only when the exact Jaccard similarity of
  the token sets, or their containment (for a headline cut short), reaches the policy's
  threshold, and no *contradiction* separates them: opposite directions ("beats" vs
  "misses"), a negation on one side only, different numbers on both sides, or disjoint
  tickers. Those are the hard negatives that plain similarity gets wrong.

Thresholds were chosen on the labelled set of `bench.novelty` (docs/performance.md).
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

_SEED = 20261202
UP, DOWN, NEGATION = "+up", "-down", "~not"
_MARKERS = frozenset({UP, DOWN, NEGATION})

_LEADING_TAGS = re.compile(
    r"^\s*(?:(?:update|corrected|refile|wrapup|brief|exclusive|breaking|analysis|factbox)"
    r"\s*\d*\s*[-:]\s*|\([a-z ]+\)\s*[-:]\s*)+",
    re.IGNORECASE,
)
_TRAILING_SOURCE = re.compile(r"\s+(?:[-\u2013\u2014|:]|via)\s+(?:[^\s\-\u2013\u2014|:]+\s*){1,4}$")
_URL = re.compile(r"https?://\S+")
_TOKEN = re.compile(r"\$?[a-z0-9]+(?:[.,][0-9]+)*%?")
_HAS_DIGIT = re.compile(r"\d")


def _lexicon(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP = _lexicon(
    """a an the and or but of to in on at for by with from as is are was were be been be being
    it its this that these those after before over into amid about than says said say report
    reports reported new its their his her they he she we you i s says"""
)
_UP_WORDS = _lexicon(
    """rise rises rose risen rising gain gains gained jump jumps jumped surge surges surged
    soar soars soared climb climbs climbed rally rallies rallied up higher high beat beats
    topped tops top exceed exceeds exceeded raise raises raised boost boosts boosted lift
    lifts lifted upgrade upgrades upgraded increase increases increased advance advances
    advanced record profit profits win wins approve approves approved rebound rebounds
    rebounded"""
)
_DOWN_WORDS = _lexicon(
    """fall falls fell fallen falling drop drops dropped slip slips slipped slide slides slid
    plunge plunges plunged sink sinks sank tumble tumbles tumbled slump slumps slumped down
    lower low miss misses missed cut cuts lowers lowered downgrade downgrades downgraded
    decrease decreases decreased decline declines declined loss losses lose loses lost
    reject rejects rejected warn warns warned retreat retreats retreated"""
)
_NEGATIONS = _lexicon("not no never denies deny denied fails fail failed without")
_SYNONYMS = {
    "shares": "share",
    "stock": "share",
    "stocks": "share",
    "inc": "",
    "corp": "",
    "co": "",
    "ltd": "",
    "plc": "",
}


@dataclass(frozen=True, slots=True)
class NoveltyPolicy:
    """How stories are linked (see the module docstring); defaults as measured."""

    horizon: timedelta = timedelta(hours=24)
    """Only items published within this of each other can be one story."""
    jaccard: float = 0.6
    """Exact Jaccard similarity of the token sets from which two items are one story."""
    containment: float = 0.75
    """Or: the share of the shorter headline's tokens found in the longer one ..."""
    min_contained_tokens: int = 4
    """... when the shorter one has at least this many tokens."""
    bands: int = 14
    rows: int = 2
    min_shared_bands: int = 3
    """MinHash signature: `bands` x `rows` values; a candidate shares `min_shared_bands`
    bands. Every band is a row in SQL for each stored item and every candidate a row
    fetched and checked: 14 bands of 2 rows, 3 shared, found as many of the labelled copies
    as 20 bands of 3 rows, 2 shared, with 30 % fewer rows and 20 % fewer candidates
    (docs/performance.md, "Story novelty")."""
    max_candidates: int = 8
    """Each new item is verified against at most this many candidates: those sharing the
    most bands with it (a copy shares far more than a look-alike). Templated headlines
    ("X shares rise N% after earnings") make dozens of look-alikes share a few bands, and
    without a bound each of them was fetched and checked."""
    max_indexed_copies: int = 8
    """A story's copies are indexed (their band keys stored, so later items find them) while
    fewer than this many besides its first are among the candidates of the batch that links
    them, and only when their words differ from every indexed copy's. Later copies still find
    the story through the indexed ones, and the candidates an item is checked against stay
    bounded however long a story keeps being syndicated (without the cap, each copy of a
    much-repeated story was checked against all the copies before it)."""

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What linking needs of a headline: its token set and its LSH band keys."""

    tokens: frozenset[str]
    bands: tuple[int, ...]
    ups: int = 0
    downs: int = 0
    negations: int = 0
    """How many words of each direction the headline has ("falls ... lower" is two downs)."""

    @property
    def numbers(self) -> frozenset[str]:
        return frozenset(t for t in self.tokens if _HAS_DIGIT.search(t))


@dataclass(frozen=True, slots=True)
class StoryItem:
    """One item as linking sees it: a new one, or a candidate already stored."""

    item_id: str
    published_at: datetime
    headline: str
    tickers: tuple[str, ...] = ()
    story_id: str | None = None
    """The story of a stored candidate; None for a new item."""


@dataclass(frozen=True, slots=True)
class Link:
    """The verdict for one new item."""

    item_id: str
    story_id: str
    is_novel: bool
    bands: tuple[int, ...] = field(default=(), compare=False)
    """The band keys to store for the item: empty when it is not indexed (a copy beyond
    `NoveltyPolicy.max_indexed_copies`, or with the same words as an indexed one)."""


def tokens(headline: str) -> frozenset[str]:
    """The normalised token set of a headline (see the module docstring)."""
    return frozenset(words(headline))


def words(headline: str) -> list[str]:
    """The normalised tokens of a headline, in order, repeats kept."""
    text = unicodedata.normalize("NFKC", html.unescape(headline))
    text = _URL.sub(" ", text)
    text = _LEADING_TAGS.sub("", text)
    stripped = _TRAILING_SOURCE.sub("", text)
    if len(stripped.split()) >= 3:  # never cut a headline down to a stub
        text = stripped
    out: list[str] = []
    for raw in _TOKEN.findall(text.lower().replace("\u2019", "'").replace("'s", "")):
        word = raw.lstrip("$")
        word = _SYNONYMS.get(word, word)
        if not word or word in _STOP:
            continue
        if word in _UP_WORDS:
            out.append(UP)
        elif word in _DOWN_WORDS:
            out.append(DOWN)
        elif word in _NEGATIONS:
            out.append(NEGATION)
        else:
            out.append(_singular(word))
    return out


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


class Hasher:
    """MinHash signatures and band keys; deterministic across processes and versions of
    Python (no `hash()`), so keys stored in SQL by one worker match another's."""

    def __init__(self, policy: NoveltyPolicy) -> None:
        self.policy = policy
        rng = np.random.default_rng(_SEED)
        high = np.iinfo(np.uint64).max
        self._a = rng.integers(1, high, size=policy.num_perm, dtype=np.uint64, endpoint=True) | 1
        self._b = rng.integers(0, high, size=policy.num_perm, dtype=np.uint64, endpoint=True)
        band_index = np.arange(1, policy.bands + 1, dtype=np.uint64)
        self._band_salt = band_index * np.uint64(_BAND_MULTIPLIER)
        # Candidates come back batch after batch: their fingerprints are worth remembering.
        self.fingerprint = lru_cache(maxsize=16384)(self._fingerprint)

    def _fingerprint(self, headline: str) -> Fingerprint:
        found = words(headline)
        toks = frozenset(found)
        # Bands from the content words only: the direction and negation markers are in half
        # of all headlines, and in short ones they made unrelated items candidates.
        return Fingerprint(
            toks,
            self.band_keys(toks - _MARKERS),
            found.count(UP),
            found.count(DOWN),
            found.count(NEGATION),
        )

    def band_keys(self, toks: Iterable[str]) -> tuple[int, ...]:
        """One signed 64-bit key per band (empty for an empty token set)."""
        hashes = np.fromiter((_hash64(t) for t in toks), dtype=np.uint64)
        if not hashes.size:
            return ()
        # Multiply-add-shift hashing (Dietzfelbinger): (a*h + b) mod 2**64, high 32 bits;
        # uint64 arithmetic wraps, which is the modulus.
        values = (np.outer(hashes, self._a) + self._b) >> np.uint64(32)
        signature = values.min(axis=0).reshape(self.policy.bands, self.policy.rows)
        # A band's key: its rows (32 bits each) and its index, packed and mixed into 64 bits,
        # all bands at once; the mixer is a bijection, so distinct bands keep distinct keys.
        packed = np.zeros(self.policy.bands, dtype=np.uint64)
        for row in signature.T:
            packed = packed * np.uint64(_ROW_MULTIPLIER) + row
        keys = _mix64(packed ^ self._band_salt)
        return tuple(keys.view(np.int64).tolist())


_ROW_MULTIPLIER = 0x100000001B3  # the FNV-1a 64-bit prime: mixes rows before the finaliser
_BAND_MULTIPLIER = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: spreads the band index


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (a bijection of uint64 with good avalanche), element-wise."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = x ^ (x >> np.uint64(31))
    return mixed


@lru_cache(maxsize=65536)
def _hash64(token: str) -> int:
    """A token's 64-bit hash, the same in every process (tokens repeat across headlines)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")


def similar(a: frozenset[str], b: frozenset[str], policy: NoveltyPolicy) -> bool:
    """Whether two token sets are close enough to be one story, before contradictions."""
    if not a or not b:
        return False
    shared = len(a & b)
    if shared / len(a | b) >= policy.jaccard:
        return True
    shorter = min(len(a), len(b))
    return shorter >= policy.min_contained_tokens and shared / shorter >= policy.containment


def contradicts(a: Fingerprint, b: Fingerprint) -> bool:
    """Whether the two headlines say different things despite sharing words: one with more
    up-words and the other with more down-words (a copy cut short only has fewer of both), an
    odd number of negations on one side only, or each side with numbers the other lacks."""
    if (a.ups - b.ups) * (a.downs - b.downs) < 0:
        return True
    if a.negations % 2 != b.negations % 2:
        return True
    na, nb = a.numbers, b.numbers
    return bool(na - nb) and bool(nb - na)


def same_story(
    a: Fingerprint,
    b: Fingerprint,
    policy: NoveltyPolicy,
    tickers_a: Sequence[str] = (),
    tickers_b: Sequence[str] = (),
) -> bool:
    """The pairwise decision: similar, not contradictory, and no disjoint tickers."""
    if tickers_a and tickers_b and not set(tickers_a) & set(tickers_b):
        return False
    return similar(a.tokens, b.tokens, policy) and not contradicts(a, b)


class Linker:
    """Links new items to stored candidates and to each other (pure; the store feeds it)."""

    def __init__(self, policy: NoveltyPolicy | None = None) -> None:
        self.policy = policy or NoveltyPolicy()
        self.hasher = Hasher(self.policy)

    def link(self, new: Sequence[StoryItem], candidates: Iterable[StoryItem]) -> list[Link]:
        """A `Link` for each new item, in order. Each new item is compared with the
        candidates and with the new items before it; it joins the story of the most similar
        match (earliest published on a tie), else starts its own. Deterministic: the same
        inputs in the same order always give the same links."""
        prints = [self.hasher.fingerprint(item.headline) for item in new]
        wanted = {band for fp in prints for band in fp.bands}
        pool: dict[int, list[tuple[StoryItem, Fingerprint, str]]] = {}
        indexed: dict[str, set[frozenset[str]]] = {}  # story -> word sets of indexed copies
        for cand in candidates:
            fp = self.hasher.fingerprint(cand.headline)
            story_id = cand.story_id or cand.item_id
            indexed.setdefault(story_id, set()).add(fp.tokens)
            self._index(pool, wanted, cand, fp, story_id)
        links = []
        for item, fp in zip(new, prints, strict=True):
            story = self._best(pool, item, fp)
            copies = indexed.setdefault(story or item.item_id, set())
            keep = story is None or (
                fp.tokens not in copies and len(copies) <= self.policy.max_indexed_copies
            )
            link = Link(
                item.item_id, story or item.item_id, story is None, fp.bands if keep else ()
            )
            links.append(link)
            if keep:
                copies.add(fp.tokens)
                self._index(pool, wanted, item, fp, link.story_id)
        return links

    @staticmethod
    def _index(
        pool: dict[int, list[tuple[StoryItem, Fingerprint, str]]],
        wanted: set[int],
        item: StoryItem,
        fp: Fingerprint,
        story_id: str,
    ) -> None:
        """Index `item` under the bands some new item has (no other band is ever looked up)."""
        entry = (item, fp, story_id)
        for band in fp.bands:
            if band in wanted:
                pool.setdefault(band, []).append(entry)

    def _best(
        self,
        pool: dict[int, list[tuple[StoryItem, Fingerprint, str]]],
        item: StoryItem,
        fp: Fingerprint,
    ) -> str | None:
        shared: dict[str, list[Any]] = {}
        for band in dict.fromkeys(fp.bands):
            for entry in pool.get(band, ()):
                counted = shared.setdefault(entry[0].item_id, [0, entry])
                counted[0] += 1
        policy = self.policy
        nearest = sorted(
            (
                (-count, cand.item_id, entry)
                for count, entry in shared.values()
                if count >= policy.min_shared_bands
                and (cand := entry[0]).item_id != item.item_id
                and abs(cand.published_at - item.published_at) <= policy.horizon
            ),
            key=lambda ranked: ranked[:2],
        )[: policy.max_candidates]
        best: tuple[float, datetime, str] | None = None
        for _, _, (cand, cand_fp, story_id) in nearest:
            if not same_story(fp, cand_fp, policy, item.tickers, cand.tickers):
                continue
            score = len(fp.tokens & cand_fp.tokens) / len(fp.tokens | cand_fp.tokens)
            key = (-score, cand.published_at, story_id)
            if best is None or key < best:
                best = key
        return best[2] if best else None
