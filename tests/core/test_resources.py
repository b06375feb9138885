"""The files finmon ships beside its code are found through the package, not the checkout."""

from __future__ import annotations

import pytest

from monitor.resources import (
    DEFAULT_ARTIFACT_NAME,
    bundled_artifact,
    bundled_artifacts,
    migrations_dir,
)
from tests.conftest import REPO


def test_every_artifact_directory_of_models_is_bundled() -> None:
    shipped = sorted(p.name for p in (REPO / "models").iterdir() if p.is_dir())
    assert bundled_artifacts() == shipped
    assert DEFAULT_ARTIFACT_NAME in shipped
    for name in shipped:
        assert (bundled_artifact(name) / "finmon.json").is_file()


def test_the_migrations_are_bundled() -> None:
    bundled = sorted(p.name for p in (migrations_dir() / "versions").glob("*.py"))
    assert bundled == sorted(p.name for p in (REPO / "migrations" / "versions").glob("*.py"))
    assert (migrations_dir() / "env.py").is_file()


def test_an_unknown_artifact_is_an_error_naming_the_shipped_ones() -> None:
    with pytest.raises(FileNotFoundError, match=DEFAULT_ARTIFACT_NAME):
        bundled_artifact("finmon-nonesuch")
