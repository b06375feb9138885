"""The classifier in its own process: same verdicts as in-process, survives the child dying."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from monitor.model.batched import BatchedClassifier
from monitor.model.interface import ModelInput
from monitor.model.process import ProcessClassifier
from monitor.resources import bundled_artifact

INPUTS = [
    ModelInput("Fed raises rates by 25 basis points"),
    ModelInput("$ACME shares plunge after fraud probe", "Regulators opened an inquiry."),
    ModelInput("Gold slips as dollar firms"),
]


@pytest.fixture(scope="module")
def remote() -> Iterator[ProcessClassifier]:
    classifier = ProcessClassifier(
        path=bundled_artifact(), device="cpu", threads=1, max_batch_size=4
    )
    yield classifier
    classifier.close()


def _child_pid(classifier: ProcessClassifier) -> int:
    [pid] = list(classifier._pool._processes)  # the one inference process
    return pid


def _wait_until_not_ready(classifier: ProcessClassifier) -> None:
    """The supervisor sees a dead child at once: readiness turns false within seconds."""
    deadline = time.monotonic() + 10
    while classifier.ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not classifier.ready()


def test_same_verdicts_as_in_process(
    remote: ProcessClassifier, real_model: BatchedClassifier
) -> None:
    assert remote.model_version == real_model.model_version
    assert remote.accepts_targets == real_model.accepts_targets
    assert remote.classify([]) == []
    for ours, local in zip(remote.classify(INPUTS), real_model.classify(INPUTS), strict=True):
        assert (ours.topic, ours.sentiment) == (local.topic, local.sentiment)
        assert ours.sentiment_score == pytest.approx(local.sentiment_score, abs=1e-5)


def test_a_dead_inference_process_is_not_ready_until_replaced(
    remote: ProcessClassifier,
) -> None:
    assert remote.ready()
    pid = _child_pid(remote)
    os.kill(pid, signal.SIGKILL)
    _wait_until_not_ready(remote)
    # a call made while the new child loads waits for it, then is served
    assert [c.topic for c in remote.classify(INPUTS)]
    assert remote.ready()
    assert _child_pid(remote) != pid


def test_a_call_running_when_the_process_dies_fails_and_the_next_is_served(
    remote: ProcessClassifier,
) -> None:
    pid = _child_pid(remote)
    with ThreadPoolExecutor(1) as caller:
        running = caller.submit(remote.classify, INPUTS * 400)
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            running.result(timeout=60)
    assert [c.topic for c in remote.classify(INPUTS)]
    assert remote.ready() and _child_pid(remote) != pid


def test_a_closed_classifier_is_not_ready() -> None:
    classifier = ProcessClassifier(path=bundled_artifact(), device="cpu", threads=1)
    classifier.close()
    assert not classifier.ready()


def test_a_bad_artifact_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a finmon model artifact"):
        ProcessClassifier(path=tmp_path / "missing", device="cpu", threads=1)


def test_close_ends_the_restarts_of_a_model_that_no_longer_loads(tmp_path: Path) -> None:
    artifact = tmp_path / "model"
    shutil.copytree(bundled_artifact(), artifact)
    classifier = ProcessClassifier(path=artifact, device="cpu", threads=1)
    shutil.rmtree(artifact)  # every new child now fails to load the model
    os.kill(_child_pid(classifier), signal.SIGKILL)
    _wait_until_not_ready(classifier)
    classifier.close()
    classifier._supervisor.join(timeout=10)
    assert not classifier._supervisor.is_alive()
