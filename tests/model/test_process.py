"""The classifier in its own process: same verdicts as in-process, survives the child dying."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from monitor.model.artifact import DEFAULT_ARTIFACT
from monitor.model.batched import BatchedClassifier
from monitor.model.interface import ModelInput
from monitor.model.process import ProcessClassifier

INPUTS = [
    ModelInput("Fed raises rates by 25 basis points"),
    ModelInput("$ACME shares plunge after fraud probe", "Regulators opened an inquiry."),
    ModelInput("Gold slips as dollar firms"),
]


@pytest.fixture(scope="module")
def remote() -> Iterator[ProcessClassifier]:
    classifier = ProcessClassifier(path=DEFAULT_ARTIFACT, device="cpu", threads=1, max_batch_size=4)
    yield classifier
    classifier.close()


def _child_pid(classifier: ProcessClassifier) -> int:
    [pid] = list(classifier._pool._processes)  # the one inference process
    return pid


def test_same_verdicts_as_in_process(
    remote: ProcessClassifier, real_model: BatchedClassifier
) -> None:
    assert remote.model_version == real_model.model_version
    assert remote.accepts_targets == real_model.accepts_targets
    assert remote.classify([]) == []
    for ours, local in zip(remote.classify(INPUTS), real_model.classify(INPUTS), strict=True):
        assert (ours.topic, ours.sentiment) == (local.topic, local.sentiment)
        assert ours.sentiment_score == pytest.approx(local.sentiment_score, abs=1e-5)


def test_a_dead_inference_process_fails_one_call_then_is_replaced(
    remote: ProcessClassifier,
) -> None:
    pid = _child_pid(remote)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    with pytest.raises(BrokenProcessPool):
        remote.classify(INPUTS)
    assert [c.topic for c in remote.classify(INPUTS)]  # a new process, model reloaded
    assert _child_pid(remote) != pid


def test_a_bad_artifact_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a finmon model artifact"):
        ProcessClassifier(path=tmp_path / "missing", device="cpu", threads=1)
