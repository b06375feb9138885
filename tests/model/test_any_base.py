"""Any local Hugging Face encoder directory trains and serves, not only the bundled BERT:
tiny randomly initialised MPNet and DistilBERT encoders (architectures whose layers have
other names, no pooler argument, and no token types), saved beside the bundled tokenizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from transformers import DistilBertConfig, DistilBertModel, MPNetConfig, MPNetModel

from finmon.cli import main
from monitor.model.base import default_base_dir
from monitor.model.batched import load_classifier
from monitor.model.interface import ModelInput
from tests.model.test_cli import TINY_TRAIN

ENCODERS = {
    "mpnet": (
        lambda: MPNetModel(
            MPNetConfig(
                vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64,
            )
        ),
        ["dense", "k", "o", "q", "v"],
    ),
    "distilbert": (
        lambda: DistilBertModel(
            DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
        ),
        ["k_lin", "lin1", "lin2", "out_lin", "q_lin", "v_lin"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("architecture", sorted(ENCODERS))
def test_training_and_serving_on_another_architecture(architecture: str, tmp_path: Path) -> None:
    build, linear_names = ENCODERS[architecture]
    base = tmp_path / architecture
    build().save_pretrained(str(base))
    for tokenizer_file in default_base_dir().glob("*"):
        if "token" in tokenizer_file.name or tokenizer_file.name == "vocab.txt":
            shutil.copy(tokenizer_file, base)
    out = tmp_path / "model"
    result = CliRunner().invoke(
        main,
        [*TINY_TRAIN, "--epochs", "1", "--base", str(base), "--out", str(out), "--skip-valid"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output

    adapter = json.loads((out / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == linear_names  # LoRA on every Linear layer
    classifier = load_classifier(out, device="cpu", base_dir=base)
    results = classifier.classify(
        [ModelInput("Acme shares jump"), ModelInput("Acme gains, Widget slips", target="Widget")]
    )
    assert [r.sentiment in {"bearish", "neutral", "bullish"} for r in results] == [True, True]
