"""Story linking (pure): table-driven pairs, the linker's ordering rules, and properties."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.novelty import Hasher, Linker, NoveltyPolicy, StoryItem, tokens

PAIRS = Path(__file__).parent.parent / "fixtures" / "novelty" / "pairs.csv"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _pairs() -> list[tuple[str, str, bool]]:
    with PAIRS.open(newline="", encoding="utf-8") as handle:
        return [(r["a"], r["b"], r["same"] == "1") for r in csv.DictReader(handle)]


@pytest.mark.parametrize(("a", "b", "same"), _pairs())
def test_labelled_pair(a: str, b: str, same: bool) -> None:
    stored = StoryItem("a", T0, a, story_id="a")
    [link] = Linker().link([StoryItem("b", T0 + timedelta(minutes=5), b)], [stored])
    assert (not link.is_novel) == same
    assert link.story_id == ("a" if same else "b")


def test_source_attribution_and_wire_tags_are_not_words() -> None:
    plain = tokens("Acme beats estimates on strong demand")
    assert tokens("UPDATE 2-Acme beats estimates on strong demand - Reuters") == plain
    assert tokens("(Reuters) - Acme beats estimates on strong demand") == plain


def test_five_copies_are_one_story_whose_first_is_novel() -> None:
    headline = "Acme recalls 2 million cars over brake fault"
    copies = [
        StoryItem(f"i{n}", T0 + timedelta(minutes=n), f"{headline} - Outlet{n}") for n in range(5)
    ]
    links = Linker().link(copies, [])
    assert [link.is_novel for link in links] == [True, False, False, False, False]
    assert {link.story_id for link in links} == {"i0"}


def test_only_copies_with_new_words_are_indexed_up_to_the_cap() -> None:
    """A copy with the words of an indexed one, or beyond the cap, keeps no band keys."""
    policy = NoveltyPolicy(max_indexed_copies=2)
    texts = [
        "Acme recalls 2 million cars over brake fault",
        "Acme recalls 2 million cars over brake fault - Reuters",  # same words
        "Acme recalls 2 million cars over a brake fault, sources say",
        "Acme recalls 2 million cars over brake fault in US",
        "Acme recalls 2 million cars over brake fault in Europe",
    ]
    items = [StoryItem(f"i{n}", T0 + timedelta(minutes=n), t) for n, t in enumerate(texts)]
    links = Linker(policy).link(items, [])
    assert {link.story_id for link in links} == {"i0"}
    assert [bool(link.bands) for link in links] == [True, False, True, True, False]


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=40), st.integers(min_value=1, max_value=6))
def test_candidates_of_a_much_repeated_story_stay_bounded(copies: int, per_batch: int) -> None:
    """Batch after batch of re-titled copies, the stored (indexed) ones fed back as
    candidates: all join the first story, and the indexed copies never pass the cap."""
    policy = NoveltyPolicy()
    linker, stored = Linker(policy), []
    base = "Acme recalls 2 million cars over brake fault"
    for start in range(0, copies, per_batch):
        batch = [
            StoryItem(f"c{n}", T0 + timedelta(minutes=n), f"{base}, says {_word(n)}")
            for n in range(start, min(copies, start + per_batch))
        ]
        for item, link in zip(batch, linker.link(batch, stored), strict=True):
            assert link.story_id == "c0"
            if link.bands:
                stored.append(StoryItem(item.item_id, item.published_at, item.headline, (), "c0"))
    assert len(stored) <= policy.max_indexed_copies + 1


def test_a_copy_is_found_among_more_look_alikes_than_max_candidates() -> None:
    """Only the candidates sharing the most bands are verified: a copy shares more than
    any look-alike, so it is among them however many look-alikes there are."""
    policy = NoveltyPolicy(max_candidates=2)
    base = "Acme shares rise on strong cloud demand, beats estimates"
    look_alikes = [
        StoryItem(f"l{n}", T0, f"Acme shares rise on strong {w} demand", story_id=f"l{n}")
        for n, w in enumerate(["chip", "ad", "auto", "retail", "energy", "phone", "game"])
    ]
    root = StoryItem("root", T0, base, story_id="root")
    [link] = Linker(policy).link([StoryItem("new", T0, f"{base} - Reuters")], [*look_alikes, root])
    assert link.story_id == "root"


def _word(n: int) -> str:
    """A distinct word per number, without digits (numbers would contradict)."""
    return "x" + "".join("abcdefghij"[int(d)] for d in str(n))


def test_a_copy_joins_the_story_of_its_stored_candidate_not_the_candidate_itself() -> None:
    root = StoryItem("root", T0, "Acme recalls 2 million cars over brake fault", story_id="root")
    copy = StoryItem(
        "copy", T0, "Acme recalls 2 million cars over brake fault | CNBC", story_id="root"
    )
    [link] = Linker().link(
        [StoryItem("new", T0, "Acme recalls 2 million cars over brake fault")], [copy, root]
    )
    assert link.story_id == "root"


def test_outside_the_horizon_is_a_new_story() -> None:
    policy = NoveltyPolicy(horizon=timedelta(hours=24))
    old = StoryItem("old", T0, "Acme recalls 2 million cars over brake fault", story_id="old")
    later = StoryItem(
        "new", T0 + timedelta(hours=25), "Acme recalls 2 million cars over brake fault"
    )
    assert Linker(policy).link([later], [old])[0].is_novel


def test_disjoint_tickers_are_different_stories() -> None:
    a = StoryItem("a", T0, "Shares jump after earnings beat", ("ACME",), story_id="a")
    b = StoryItem("b", T0, "Shares jump after earnings beat", ("GLOBEX",))
    assert Linker().link([b], [a])[0].is_novel


def test_band_keys_do_not_depend_on_the_process() -> None:
    """Keys are stored in SQL by one worker and looked up by another: they must be stable."""
    keys = Hasher(NoveltyPolicy()).band_keys(["acme", "recall"])
    assert keys == Hasher(NoveltyPolicy()).band_keys(["recall", "acme"])
    assert len(keys) == len(set(keys)) == NoveltyPolicy().bands
    assert all(-(2**63) <= k < 2**63 for k in keys)
    # the stored format: a change here orphans every band key already in the database
    assert keys[:3] == (-9186398295690138132, -4249126950710556947, 707131405965411722)


headlines = st.text(alphabet=st.sampled_from("abcdefgh XYZ$%0123-|:&;'"), min_size=0, max_size=60)


@settings(max_examples=200, deadline=None)
@given(st.lists(headlines, min_size=1, max_size=12))
def test_every_story_starts_with_a_novel_item_of_its_own(texts: list[str]) -> None:
    items = [StoryItem(f"i{n}", T0 + timedelta(minutes=n), t) for n, t in enumerate(texts)]
    links = Linker().link(items, [])
    novel = {link.item_id for link in links if link.is_novel}
    order = [link.item_id for link in links]
    for link in links:
        assert (link.story_id == link.item_id) == link.is_novel
        assert link.story_id in novel
        assert order.index(link.story_id) <= order.index(link.item_id)


@settings(max_examples=200, deadline=None)
@given(headlines)
def test_a_headline_with_content_words_is_a_copy_of_itself(text: str) -> None:
    stored = StoryItem("a", T0, text, story_id="a")
    [link] = Linker().link([StoryItem("b", T0, text)], [stored])
    assert link.is_novel == (not Hasher(NoveltyPolicy()).fingerprint(text).bands)
