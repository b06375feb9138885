"""``finmon train`` (a seconds-long run on the fixtures), ``evaluate`` and ``classify``."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from finmon.cli import main
from monitor.model.artifact import load_artifact, read_meta
from monitor.model.batched import load_classifier
from monitor.model.encoding import encode_items, pad_batch
from monitor.model.interface import ModelInput
from monitor.model.soup import check_ingredients
from monitor.model.train import Split, TrainingRefused, split_of
from monitor.resources import bundled_artifact
from tests.model.conftest import FIXTURES

TINY_SOURCES = [
    "--source", f"topic={FIXTURES / 'topic'}",
    "--source", f"sentiment={FIXTURES / 'sentiment'}",
    "--source", f"sentiment:news={FIXTURES / 'news'}",
]  # fmt: skip
TINY_TRAIN = [
    "train",
    *TINY_SOURCES,
    "--sampling-temperature", "2",
    "--epochs", "2",
    "--max-length", "32",
    "--lora-rank", "4",
    "--batch-size", "8",
    "--threads", "2",
]  # fmt: skip


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two runs with the same seed, to check the artifact and reproducibility."""
    root = tmp_path_factory.mktemp("tiny")
    first, second = root / "tiny-a", root / "tiny-b"
    run(*TINY_TRAIN, "--out", str(first))
    run(*TINY_TRAIN, "--out", str(second), "--skip-valid")
    return first, second


def test_tiny_training_writes_a_loadable_artifact(tiny_artifacts: tuple[Path, Path]) -> None:
    out, _ = tiny_artifacts
    meta = read_meta(out)
    assert meta["training"]["config"]["max_length"] == 32
    # "auto": the GPU when present, recorded as the device it resolved to
    assert meta["training"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    views = meta["training"]["views"]
    assert set(views) == {
        "topic/topic",
        "sentiment/sentiment",
        "sentiment/news",
        "sentiment/news/headline",
    }
    assert sum(v["sampling_weight"] for v in views.values()) == pytest.approx(1.0)
    assert meta["temperature"]["sentiment"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert set(metrics["history"][0]["dev"]) == set(views)
    valid = metrics["valid"]
    assert valid["topic/topic"]["dedup"]["n"] < valid["topic/topic"]["full"]["n"]
    assert set(valid["sentiment/news"]) == {"headline", "entity", "multi"}
    assert valid["sentiment/news"]["multi"]["n"] < valid["sentiment/news"]["entity"]["n"]
    assert "ece" in valid["sentiment/sentiment"]["full"]
    assert sum(f.stat().st_size for f in out.iterdir()) < 10 * 1024 * 1024
    classifier = load_classifier(out, device="cpu")
    assert classifier.model_version.startswith("tiny-a+")
    assert classifier.accepts_targets
    (result,) = classifier.classify([ModelInput("Acme shares jump")])
    assert result.sentiment in {"bearish", "neutral", "bullish"}


def test_distillation_from_teachers_across_tasks_and_a_warm_start(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    """A student trained on teachers' soft labels (here the two tiny artifacts, equal
    weights under two names), across tasks, starting from another artifact's weights,
    records all of them; every view chooses the first teacher (equal teachers: the smaller
    subset); the rows of one task also train the other head, and joined headlines the
    sentiment towards each of their entities; the loss falls."""
    first, second = tiny_artifacts
    out = tmp_path / "student"
    run(
        *TINY_TRAIN, "--out", str(out), "--skip-valid", "--teacher", str(first),
        "--teacher", str(second), "--cross-task", "--init", str(first),
        "--distill-weight", "0.7", "--contrast-pairs",
    )  # fmt: skip
    meta = read_meta(out)
    version, other = (load_classifier(p, device="cpu").model_version for p in (first, second))
    assert meta["training"]["teachers"] == [version, other]
    assert meta["training"]["init"] == version
    views = meta["training"]["views"]
    assert {name for name, view in views.items() if not view["gold_labels"]} == {
        "sentiment/soft:topic/topic",
        "topic/soft:sentiment/sentiment",
        "topic/soft:sentiment/news/headline",
    }
    assert all(view["teachers"] == [version] for view in views.values())
    pairs = views["sentiment/news/pairs"]  # gold labels, judged by the real entity rows
    assert pairs["gold_labels"] and pairs["train_rows_used"] > 0
    assert pairs["early_stopping_rows"] == 0
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert set(history[0]["dev"]) == {
        name for name, view in views.items() if view["early_stopping_rows"]
    }


def test_a_teacher_cache_spares_the_teachers_passes_and_changes_nothing(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second run with the same teacher and rows reads every pass from the cache (its
    entries are left untouched, the teacher is never loaded) and writes the same weights
    as the first."""
    first, _ = tiny_artifacts
    cache = tmp_path / "cache"
    student = [*TINY_TRAIN, "--skip-valid", "--teacher", str(first), "--cross-task"]
    run(*student, "--out", str(tmp_path / "a"), "--teacher-cache", str(cache))
    entries = {p: p.stat().st_mtime_ns for p in cache.glob("*.npz")}
    assert entries  # every set of rows a teacher read

    def no_teacher_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("a teacher was loaded though every pass is cached")

    with monkeypatch.context() as patched:
        patched.setattr("monitor.model.train.load_classifier", no_teacher_load)
        run(*student, "--out", str(tmp_path / "b"), "--teacher-cache", str(cache))
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.npz")} == entries
    run(*student, "--out", str(tmp_path / "c"))
    for name in ("adapter_model.safetensors", "heads.safetensors"):
        a, b, c = ((tmp_path / run_ / name).read_bytes() for run_ in "abc")
        assert a == b == c


def test_a_warm_start_at_a_higher_rank_starts_where_its_init_ended(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    """A rank-8 run (with another alpha) from a rank-4 artifact, at a learning rate too
    small to move anything, computes the init's logits: the update was carried over whole,
    scaling included."""
    first, _ = tiny_artifacts
    out = tmp_path / "wide"
    run(
        *TINY_TRAIN, "--out", str(out), "--skip-valid", "--init", str(first),
        "--lora-rank", "8", "--lora-alpha", "4", "--epochs", "1", "--lr", "1e-30",
    )  # fmt: skip
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    narrow, wide = load_artifact(first), load_artifact(out)
    batch = pad_batch(
        encode_items(narrow.tokenizer, [("Acme shares jump, Globex slips", None, "Acme")], 32),
        int(narrow.tokenizer.pad_token_id),
    )
    with torch.no_grad():
        for task, logits in narrow.model(**batch).items():
            torch.testing.assert_close(wide.model(**batch)[task], logits, atol=1e-5, rtol=1e-5)


def _edited(artifact: Path, out: Path, file: str, **changes: object) -> Path:
    """A copy of ``artifact`` at ``out`` whose JSON ``file`` has ``changes`` applied."""
    shutil.copytree(artifact, out)
    path = out / file
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}), encoding="utf-8")
    return out


@pytest.mark.parametrize(
    ("init", "expected"),
    [
        (
            lambda first, tmp: bundled_artifact(),
            "adapter does not fit (rank 64, above this run's 4); to start at a lower rank, "
            "compact it first",
        ),
        (
            lambda first, tmp: _edited(
                first,
                tmp / "labels",
                "finmon.json",
                label_names={**read_meta(first)["label_names"], "topic": ["a", "b"]},
            ),
            "its label names differ from the training sources'",
        ),
        (
            lambda first, tmp: _edited(
                first,
                tmp / "base",
                "finmon.json",
                base={**read_meta(first)["base"], "name": "other", "weights_sha256": {"x": "0"}},
            ),
            "trained on another base encoder (other",
        ),
        (
            lambda first, tmp: _edited(
                first, tmp / "per-module", "adapter_config.json", rank_pattern={"query": 2}
            ),
            "per-module LoRA ranks or alphas are not supported",
        ),
    ],
    ids=["higher-rank", "labels", "base", "per-module"],
)
def test_an_init_the_run_cannot_start_from_is_refused_before_any_teacher_pass(
    tiny_artifacts: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    init: Callable[[Path, Path], Path],
    expected: str,
) -> None:
    """The refusal comes before the teachers' passes, which can take many minutes."""
    first, _ = tiny_artifacts

    def no_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("a teacher pass ran before the refusal")

    monkeypatch.setattr("monitor.model.train._teacher_probs", no_pass)
    args = ["--out", str(tmp_path / "x"), "--teacher", str(first), "--init"]
    result = CliRunner().invoke(main, [*TINY_TRAIN, *args, str(init(first, tmp_path))])
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("role", ["--init", "--teacher"])
def test_a_run_refuses_an_artifact_trained_on_another_split(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path, role: str
) -> None:
    """The artifact trained on rows this run holds out: it would be favoured as a teacher,
    and flatter the run as its starting point."""
    first, _ = tiny_artifacts
    result = CliRunner().invoke(
        main,
        [*TINY_TRAIN, "--out", str(tmp_path / "x"), "--split-seed", "7", role, str(first)],
    )
    assert result.exit_code == 1
    assert (
        "with split seed 13, this run holds out holdout fraction 0.1 with split seed 7"
        in result.output
    )
    assert not (tmp_path / "x").exists()


def _logits(artifact: Path, text: str, target: str | None) -> dict[str, torch.Tensor]:
    loaded = load_artifact(artifact)
    batch = pad_batch(
        encode_items(loaded.tokenizer, [(text, None, target)], 32),
        int(loaded.tokenizer.pad_token_id),
    )
    with torch.no_grad():
        return dict(loaded.model(**batch))


def test_a_soup_of_equal_artifacts_computes_what_they_compute(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    """Two runs with equal weights average to those weights (stored in float16); the soup
    records its trials, keeps the early-stopping split, and a run can start from it."""
    first, second = tiny_artifacts
    out = tmp_path / "soup"
    output = run("soup", *TINY_SOURCES, "--out", str(out), str(first), str(second))
    meta = read_meta(out)
    record = meta["training"]["soup"]
    versions = [load_classifier(p, device="cpu").model_version for p in (first, second)]
    assert record["ingredients"] == versions  # a tie keeps the candidate
    assert [t["kept"] for t in record["trials"]] == [True, True]
    assert record["rank"] == 4 and record["smallest_energy_kept"] == pytest.approx(1.0)
    assert split_of(meta) == Split(0.1, 13)
    assert "kept" in output and (out / "metrics.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["valid"]) == {"topic/topic", "sentiment/sentiment", "sentiment/news"}
    for text, target in [("Acme shares jump, Globex slips", "Acme"), ("Fed holds rates", None)]:
        expected = _logits(first, text, target)
        for task, logits in _logits(out, text, target).items():
            torch.testing.assert_close(logits, expected[task], atol=2e-2, rtol=0)
    run(*TINY_TRAIN, "--out", str(tmp_path / "next"), "--skip-valid", "--init", str(out),
        "--epochs", "1")  # fmt: skip


def test_a_soup_refuses_artifacts_that_are_not_one_model(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    first, _ = tiny_artifacts
    other = tmp_path / "short"
    run(*TINY_TRAIN, "--out", str(other), "--skip-valid", "--epochs", "1", "--max-length", "24")
    result = CliRunner().invoke(
        main, ["soup", *TINY_SOURCES, "--out", str(tmp_path / "x"), str(first), str(other)]
    )
    assert result.exit_code == 1
    assert "are not one model: their max_length differ" in result.output
    assert not (tmp_path / "x").exists()
    result = CliRunner().invoke(main, ["soup", *TINY_SOURCES, "--out", str(first), str(first)])
    assert result.exit_code == 1
    assert "a candidate; write the soup elsewhere" in result.output
    varied = _edited(first, tmp_path / "varied", "adapter_config.json", alpha_pattern={"key": 1})
    result = CliRunner().invoke(
        main, ["soup", *TINY_SOURCES, "--out", str(tmp_path / "x"), str(first), str(varied)]
    )
    assert result.exit_code == 1
    assert "per-module LoRA ranks or alphas are not supported" in result.output


def test_a_soup_of_capped_runs_names_their_cap(tmp_path: Path) -> None:
    """Runs trained on a row cap held out other rows: a soup must be told the cap, and
    records it with the split."""
    capped = [tmp_path / name for name in ("a", "b")]
    for out in capped:
        run(*TINY_TRAIN, "--out", str(out), "--skip-valid", "--epochs", "1",
            "--max-train-rows", "40")  # fmt: skip
    args = ["soup", *TINY_SOURCES, "--skip-valid", *map(str, capped)]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "holdout fraction 0.1 of 40 rows with split seed 13" in result.output
    run(*args, "--out", str(tmp_path / "soup"), "--max-train-rows", "40")
    assert split_of(read_meta(tmp_path / "soup")) == Split(0.1, 13, 40)


def test_training_is_reproducible(tiny_artifacts: tuple[Path, Path]) -> None:
    first, second = tiny_artifacts
    for name in ("adapter_model.safetensors", "heads.safetensors"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_evaluate_json_is_one_object(tmp_path: Path) -> None:
    plot = tmp_path / "cm.png"
    out = run(
        "evaluate", "--task", "sentiment", "--data", str(FIXTURES / "sentiment_names.csv"),
        "--json", "--plot", str(plot),
    )  # fmt: skip
    report = json.loads(out)
    assert report["n"] == 9 and 0.0 <= report["accuracy"] <= 1.0
    assert {"macro_f1", "per_class", "confusion"} <= set(report)
    assert plot.stat().st_size > 0


def test_evaluate_dedup_uses_the_sibling_train_csv() -> None:
    data = str(FIXTURES / "topic" / "valid.csv")
    full = json.loads(run("evaluate", "--task", "topic", "--data", data, "--json"))
    dedup = json.loads(run("evaluate", "--task", "topic", "--data", data, "--json", "--dedup"))
    assert (full["n"], dedup["n"]) == (24, 21)


def test_evaluate_table_output() -> None:
    out = run("evaluate", "--task", "sentiment", "--data", str(FIXTURES / "sentiment/valid.csv"))
    assert "macro_f1=" in out and "confusion matrix" in out and "bullish" in out


def test_classify_prints_each_text() -> None:
    out = run("classify", "Acme upgraded to Buy", "Oil falls 5%")
    assert out.count("topic:") == 2 and out.count("sentiment:") == 2
    assert "model: finmon-minilm-v6+" in out


def test_evaluate_reads_an_entity_set_with_and_without_targets() -> None:
    data = str(FIXTURES / "news" / "valid.csv")
    base = ["evaluate", "--task", "sentiment", "--data", data, "--json"]
    entity = json.loads(run(*base))
    multi = json.loads(run(*base, "--entities", "multi"))
    headline = json.loads(run(*base, "--entities", "single", "--no-target"))
    assert entity["targets"] and multi["targets"] and not headline["targets"]
    # 12 single-entity rows, 10 distinct headlines: the no-target view scores each once
    assert (entity["n"], multi["n"], headline["n"]) == (20, 8, 10)
    assert entity["labels"] == ["bearish", "neutral", "bullish"]


def test_evaluate_refuses_an_entity_filter_on_a_plain_set() -> None:
    data = str(FIXTURES / "sentiment" / "valid.csv")
    result = CliRunner().invoke(
        main, ["evaluate", "--task", "sentiment", "--data", data, "--entities", "multi"]
    )
    assert result.exit_code != 0 and "needs an entity set" in result.output


def test_classify_rejects_an_empty_headline() -> None:
    result = CliRunner().invoke(main, ["classify", "  "])
    assert result.exit_code == 2 and "headline is empty" in result.output


def test_recalibrate_keeps_the_weights_under_a_new_name(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    """Same weights (and weight hash), a new name, temperatures fitted on the artifact's
    own held-out rows: with --max-ece 0 every head is calibrated, and the sentiment head
    also for targeted inputs (the fixture holds out two rows of multi-entity headlines)."""
    first, _ = tiny_artifacts
    out = tmp_path / "tiny-recalibrated"
    output = run("recalibrate", str(first), *TINY_SOURCES, "--out", str(out), "--max-ece", "0")
    for name in ("adapter_model.safetensors", "heads.safetensors", "adapter_config.json"):
        assert (out / name).read_bytes() == (first / name).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "finmon.json", "heads.safetensors",
        "metrics.json",
    ]  # fmt: skip
    old, new = (load_classifier(p, device="cpu").model_version for p in (first, out))
    assert new.split("+") == ["tiny-recalibrated", old.split("+")[1]]
    meta, metrics = read_meta(out), json.loads((out / "metrics.json").read_text())
    calibration = metrics["calibration"]
    assert meta["training"]["recalibrated"]["from"] == old
    assert meta["training"]["config"] == read_meta(first)["training"]["config"]
    assert meta["temperature"] == {t: c["temperature"] for t, c in calibration.items()}
    targeted = calibration["sentiment"]["targeted"]
    assert targeted["rows"] == 2
    assert meta["targeted_temperature"] == {"sentiment": targeted["temperature"]}
    assert set(metrics["valid"]) == {"topic/topic", "sentiment/sentiment", "sentiment/news"}
    assert "targeted" in output and f"wrote {out}" in output
    result = CliRunner().invoke(
        main, ["recalibrate", str(first), *TINY_SOURCES, "--out", str(first)]
    )
    assert result.exit_code == 1 and "the artifact itself" in result.output


def test_refit_heads_solves_a_head_and_leaves_the_others_bit_identical(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    """The topic head refitted on the frozen encoder: the adapter is the original's, the
    sentiment head and its outputs are the original's bit for bit, and what the record
    says was shipped is what the written model scores on the held-out slice."""
    first, _ = tiny_artifacts
    out = tmp_path / "tiny-refit"
    output = run("refit-heads", str(first), *TINY_SOURCES, "--out", str(out), "--task", "topic")
    assert (out / "adapter_model.safetensors").read_bytes() == (
        first / "adapter_model.safetensors"
    ).read_bytes()
    old_heads, new_heads = (load_file(str(p / "heads.safetensors")) for p in (first, out))
    for name in ("sentiment.weight", "sentiment.bias"):
        assert torch.equal(old_heads[name], new_heads[name])
    meta, metrics = read_meta(out), json.loads((out / "metrics.json").read_text())
    fit = meta["training"]["refit"]["tasks"]["topic"]
    assert set(meta["training"]["refit"]["tasks"]) == {"topic"}
    assert list(fit["grid"]) == ["0.1", "0.03", "0.01", "0.003", "0.001"]
    topic = metrics["dev"]["topic/topic"]
    assert fit["after"] == pytest.approx((topic["accuracy"] + topic["macro_f1"]) / 2)
    if fit["l2"] is None:
        assert fit["after"] == fit["before"] >= max(fit["grid"].values())
        assert torch.equal(old_heads["topic.weight"], new_heads["topic.weight"])
    else:
        assert fit["after"] == fit["grid"][str(fit["l2"])] > fit["before"]
        assert not torch.equal(old_heads["topic.weight"], new_heads["topic.weight"])
    items = [ModelInput("Acme shares slump after profit warning"), ModelInput("Fed holds rates")]
    old, new = (load_classifier(p, device="cpu") for p in (first, out))
    assert np.array_equal(
        old.predict_logits(items)["sentiment"], new.predict_logits(items)["sentiment"]
    )
    assert new.model_version.startswith("tiny-refit+")
    assert meta["training"]["refit"]["from"] == old.model_version
    assert re.search(r"^topic +held-out", output, re.MULTILINE) and f"wrote {out}" in output
    result = CliRunner().invoke(
        main, ["refit-heads", str(first), *TINY_SOURCES, "--out", str(first)]
    )
    assert result.exit_code == 1 and "the artifact itself" in result.output


def test_a_targeted_head_serves_the_rows_with_a_target_and_no_other(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    """``--task sentiment@target`` on an artifact whose sentiment head cannot tell rows
    apart (zeroed, so a fitted head must score above it): the targeted head is added and
    kept, every untargeted output and every topic stays the original's bit for bit, rows
    with a target change, a mixed batch gives each row what it gets alone, and a soup
    refuses to mix artifacts with and without it, and training from it drops it."""
    first, _ = tiny_artifacts
    blind = tmp_path / "tiny-blind"
    shutil.copytree(first, blind)
    heads = load_file(str(blind / "heads.safetensors"))
    heads = {k: torch.zeros_like(v) if k.startswith("sentiment.") else v for k, v in heads.items()}
    save_file(heads, str(blind / "heads.safetensors"))
    out = tmp_path / "tiny-targeted"
    output = run(
        "refit-heads", str(blind), *TINY_SOURCES, "--out", str(out),
        "--task", "sentiment@target", "--skip-valid",
    )  # fmt: skip
    fit = read_meta(out)["training"]["refit"]["tasks"]["sentiment@target"]
    assert fit["l2"] is not None and fit["after"] > fit["before"]
    assert re.search(r"^sentiment@target +held-out", output, re.MULTILINE)
    new_heads = load_file(str(out / "heads.safetensors"))
    assert set(new_heads) == set(heads) | {"targeted.sentiment.weight", "targeted.sentiment.bias"}
    assert all(torch.equal(heads[k], new_heads[k]) for k in heads)
    plain = [ModelInput("Acme shares slump after profit warning"), ModelInput("Fed holds rates")]
    targeted = [ModelInput("Acme gains, Widget slips", target="Widget")]
    old, new = (load_classifier(p, device="cpu") for p in (blind, out))
    for task, logits in new.predict_logits(plain).items():
        assert np.array_equal(logits, old.predict_logits(plain)[task])
    batch = [*plain, *targeted] * 4  # several slices, each with rows of both kinds
    mixed = new.predict_logits(batch)
    np.testing.assert_allclose(mixed["topic"], old.predict_logits(batch)["topic"], atol=1e-5)
    assert not np.allclose(mixed["sentiment"][2], old.predict_logits(targeted)["sentiment"][0])
    for row, item in enumerate(batch):
        alone = new.predict_logits([item])["sentiment"][0]
        np.testing.assert_allclose(mixed["sentiment"][row], alone, atol=1e-5)
    with pytest.raises(TrainingRefused, match="targeted heads differ"):
        check_ingredients([blind, out])
    # training moves the encoder a targeted head was fitted to: a run from it drops the head
    continued = tmp_path / "tiny-continued"
    run(*TINY_TRAIN, "--epochs", "1", "--init", str(out), "--out", str(continued), "--skip-valid")
    assert set(load_file(str(continued / "heads.safetensors"))) == set(heads)
