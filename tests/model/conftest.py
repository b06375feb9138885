"""Fixtures of the model tests: the fixture CSVs and the committed artifact, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.model.batched import BatchedClassifier, load_classifier
from monitor.resources import bundled_artifact

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "model"


@pytest.fixture(scope="session")
def real_model() -> BatchedClassifier:
    """The committed artifact on CPU, small batches so chunking is exercised; one thread
    (torch's intra-op), the reference the split-batch mode is compared with."""
    return load_classifier(
        bundled_artifact(), device="cpu", max_batch_size=4, threads=1, cpu_parallelism="intra-op"
    )
