"""The held-out rows an artifact is judged and calibrated on, read as the artifact reads.

Soups and recalibration work on finished artifacts: they cut the sources at the
artifacts' own early-stopping split and encode the rows with the artifact's input
settings (length, target markers), not the defaults of a training run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from transformers import AutoTokenizer

from monitor.model.artifact import check_base, read_meta
from monitor.model.train import (
    Source,
    TrainConfig,
    View,
    check_labels,
    encode_views,
    label_names_of,
    prepare_views,
)


@dataclass
class HeldOut:
    """The sources' views cut at one split and encoded as an artifact reads its input."""

    views: list[View]
    names: dict[str, tuple[str, ...]]
    pad_id: int
    cfg: TrainConfig


def held_out_views(
    sources: Sequence[Source], artifact: Path, cfg: TrainConfig, base_dir: Path | None
) -> HeldOut:
    """The views of ``sources`` at ``cfg``'s split, encoded with ``artifact``'s base
    tokenizer, input length and target markers; refuses other label names."""
    meta = read_meta(artifact)
    cfg = replace(cfg, max_length=meta["max_length"], target_markers=meta["target_markers"])
    names = label_names_of(sources)
    check_labels(artifact, meta, names)
    views = [v for source in sources for v in prepare_views(source, names[source.task], cfg)]
    tokenizer = AutoTokenizer.from_pretrained(
        str(check_base(meta, base_dir)), local_files_only=True
    )
    encode_views(views, tokenizer, cfg)
    return HeldOut(views, names, int(tokenizer.pad_token_id), cfg)
