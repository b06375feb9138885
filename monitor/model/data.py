"""Loading the labelled CSV files and making the splits the model uses.

Two layouts are read: ``text,label`` (one label per text, the Twitter sets) and
``id,text,entity,label,n_entities`` (one row per (headline, entity) with the label towards
that entity, SEntFiN). Labels are accepted as the dataset's integer ids (resolved through
``labels.json`` next to the CSV, or the published dataset's id map when there is none) or
as names, matched case-insensitively; ``negative``/``positive`` are synonyms of bearish/bullish. The
model's own label order never depends on a dataset's ids: the sentiment dataset numbers
its classes 0 Bearish, 1 Bullish, 2 Neutral while the model uses ``SENTIMENT_LABELS``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.model.interface import SENTIMENT_LABELS, Task
from monitor.model.text import mark_mentions, normalise_text

# Id maps of the published Twitter Financial News datasets, used when a CSV comes
# without its labels.json.
TOPIC_DATASET_LABELS: tuple[str, ...] = (
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
)
SENTIMENT_DATASET_LABELS: tuple[str, ...] = ("Bearish", "Bullish", "Neutral")
_DATASET_LABELS: dict[Task, tuple[str, ...]] = {
    "topic": TOPIC_DATASET_LABELS,
    "sentiment": SENTIMENT_DATASET_LABELS,
}
_SYNONYMS: dict[Task, dict[str, str]] = {
    "topic": {},
    "sentiment": {"negative": "bearish", "positive": "bullish"},
}


def read_id_names(csv_path: Path, task: Task) -> dict[int, str]:
    """The id → name map for a CSV: its sibling ``labels.json``, else the dataset's."""
    labels_json = csv_path.parent / "labels.json"
    if labels_json.is_file():
        raw = json.loads(labels_json.read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in raw.items()}
    return dict(enumerate(_DATASET_LABELS[task]))


def model_label_names(task: Task, data_dir: Path | None = None) -> tuple[str, ...]:
    """The label order of a head: fixed by the interface for sentiment, by id for topic."""
    if task == "sentiment":
        return SENTIMENT_LABELS
    if data_dir is None:
        return TOPIC_DATASET_LABELS
    id_names = read_id_names(data_dir / "train.csv", task)
    return tuple(id_names[i] for i in sorted(id_names))


def parse_labels(
    raw: Iterable[object], task: Task, label_names: Sequence[str], id_names: Mapping[int, str]
) -> np.ndarray:
    """Map raw labels (ids or names) to indices into ``label_names``.

    Raises ValueError naming every label it could not map, so a wrong file fails loudly
    instead of being silently scored against the wrong classes.
    """
    by_name = {name.casefold(): i for i, name in enumerate(label_names)}
    for synonym, name in _SYNONYMS[task].items():
        if name in by_name:
            by_name.setdefault(synonym, by_name[name])
    out: list[int] = []
    unknown: set[str] = set()
    for value in raw:
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            text = id_names.get(int(text), text)
        index = by_name.get(text.casefold())
        if index is None:
            unknown.add(str(value))
            index = -1
        out.append(index)
    if unknown:
        raise ValueError(
            f"unknown {task} label(s) {sorted(unknown)}; expected ids {sorted(id_names)} "
            f"or names {list(label_names)}"
        )
    return np.asarray(out, dtype=np.int64)


def load_split(csv_path: Path, task: Task, label_names: Sequence[str]) -> pd.DataFrame:
    """Read one CSV into ``text`` (normalised), ``raw``, ``label`` (index), ``target``
    (normalised entity, "" for none), ``raw_target`` and ``n_entities`` (0 when the file
    has no entity column).

    ``raw`` and ``raw_target`` are kept so evaluation can feed the model exactly what
    serving would get.
    """
    frame = pd.read_csv(csv_path, dtype={"text": str, "entity": str}, keep_default_na=False)
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {sorted(missing)}")
    labels = parse_labels(frame["label"], task, label_names, read_id_names(csv_path, task))
    texts = [normalise_text(t) for t in frame["text"]]
    raw_targets = frame["entity"] if "entity" in frame.columns else pd.Series([""] * len(frame))
    if "n_entities" in frame.columns:
        n_entities = frame["n_entities"].astype(int).to_numpy()
    else:
        n_entities = np.zeros(len(frame), dtype=int)
    return pd.DataFrame(
        {
            "text": texts,
            "raw": frame["text"],
            "label": labels,
            "target": [normalise_text(t) for t in raw_targets],
            "raw_target": raw_targets.to_numpy(),
            "n_entities": n_entities,
        }
    )


def has_targets(frame: pd.DataFrame) -> bool:
    """Whether the rows are (headline, entity) rows rather than one label per text."""
    return bool((frame["target"] != "").any())


_KEY = ["text", "target"]


def resolve_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per normalised (text, target), labelled by majority vote; ties are dropped.

    Near-duplicates (same tweet, different link) would otherwise be over-weighted, and
    the few with conflicting labels would teach the model both answers. Empty texts
    carry no signal and are dropped too. ``n_entities`` is kept (the largest seen).
    """
    frame = frame[frame["text"] != ""]
    counts = frame.groupby([*_KEY, "label"], sort=False).size().reset_index(name="n")
    counts = counts.sort_values("n", ascending=False, kind="stable")
    top_two = counts.groupby(_KEY, sort=False)["n"].apply(lambda n: list(n[:2]))
    tied = {key for key, n in top_two.items() if len(n) == 2 and n[0] == n[1]}
    best = counts.drop_duplicates(_KEY, keep="first")
    best = best[[key not in tied for key in zip(best["text"], best["target"], strict=True)]]
    entities = frame.groupby(_KEY, sort=False)["n_entities"].max()
    best = best.join(entities, on=_KEY)
    return best[[*_KEY, "label", "n_entities"]].sort_index().reset_index(drop=True)


def dedup_against(frame: pd.DataFrame, reference_texts: Iterable[str]) -> pd.DataFrame:
    """Drop rows whose normalised text is in the reference (train) set, then repeats."""
    seen = set(reference_texts)
    kept = frame[~frame["text"].isin(seen)].drop_duplicates("text", keep="first")
    return kept.reset_index(drop=True)


def holdout_split(
    frame: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off a stratified held-out slice for early stopping.

    Call it on a frame with unique texts (after :func:`resolve_duplicates`) so the split
    is grouped by URL-stripped text: no tweet is on both sides. Every class with at least
    two rows keeps one row on each side.
    """
    if has_targets(frame):
        return _grouped_holdout(frame, fraction, seed)
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for _, rows in frame.groupby("label", sort=True):
        index = rows.index.to_numpy()
        if len(index) < 2:
            continue
        take = min(len(index) - 1, max(1, round(fraction * len(index))))
        held.extend(rng.choice(index, size=take, replace=False).tolist())
    is_held = frame.index.isin(held)
    return frame[~is_held].reset_index(drop=True), frame[is_held].reset_index(drop=True)


def _grouped_holdout(
    frame: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out whole headlines: every entity row of a headline is on the same side, so the
    early-stopping slice never scores a headline the model saw with another target."""
    texts = np.array(sorted(set(frame["text"])))
    rng = np.random.default_rng(seed)
    take = min(len(texts) - 1, max(1, round(fraction * len(texts))))
    held = set(rng.choice(texts, size=take, replace=False).tolist())
    is_held = frame["text"].isin(held)
    return frame[~is_held].reset_index(drop=True), frame[is_held].reset_index(drop=True)


def headline_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of an entity set that stand for their headline: single-entity headlines,
    with the target dropped, so the model also learns headline-level sentiment on news."""
    single = frame[frame["n_entities"] == 1].assign(target="")
    return single.drop_duplicates(["text"]).reset_index(drop=True)


def contrast_pairs(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Two-entity headlines made from an entity set's single-entity rows, for learning to
    read the sentiment *towards a target* rather than the headline's.

    Single-entity headlines are shuffled (by ``seed``) and joined two by two as
    ``"A; B"``; each joined text gives two rows, one per entity, each with its own
    headline's label. A pair is skipped (its headlines left unused) when either entity is
    mentioned in the other headline (as :func:`monitor.model.text.mark_mentions` finds
    it), since that headline's label may not be towards it; no headline is used twice.
    Whatever the labels, every pair is kept, so "two entities, two different sentiments"
    is not taught as a rule."""
    single = frame[(frame["n_entities"] == 1) & (frame["target"] != "")]
    single = single.drop_duplicates(["text"])
    order = np.random.default_rng(seed).permutation(len(single))
    rows = single.iloc[order].to_dict("records")
    pairs: list[dict[str, object]] = []
    for first, second in zip(rows[0::2], rows[1::2], strict=False):
        if _names(first["target"], second["text"]) or _names(second["target"], first["text"]):
            continue
        text = f"{first['text']}; {second['text']}"
        for row in (first, second):
            pairs.append({"text": text, "target": row["target"], "label": row["label"]})
    return pd.DataFrame(pairs, columns=["text", "target", "label"]).assign(n_entities=2)


def _names(entity: str, text: str) -> bool:
    """Whether ``text`` mentions ``entity`` as serving would mark it."""
    return mark_mentions(text, entity) != text
