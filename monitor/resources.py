"""The files finmon ships beside its code: the model artifacts and the alembic migrations.

They live in the checkout's top-level `models/` and `migrations/`, and reach the package as
`monitor/bundled/models` and `monitor/bundled/migrations` (links into the checkout, copied
into the wheel as package data; see pyproject.toml). They are found through
`importlib.resources`, never through the checkout's layout, so an installed finmon finds
them in site-packages and a checkout on `PYTHONPATH` finds its own.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_ARTIFACT_NAME = "finmon-minilm-v6"
"""The bundled artifact used when the config names none (`model.artifact`)."""


def _bundled(*parts: str) -> Path:
    # finmon is installed as plain files (pip never installs zipped packages), so a
    # resource of the package is a real path that alembic and safetensors can open.
    return Path(str(files("monitor").joinpath("bundled", *parts)))


def bundled_artifacts() -> list[str]:
    """The names of the model artifacts shipped with finmon (directories of `models/`)."""
    root = _bundled("models")
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def bundled_artifact(name: str = DEFAULT_ARTIFACT_NAME) -> Path:
    """The directory of the shipped artifact `name`; an unknown name is an error that lists
    the shipped ones."""
    path = _bundled("models", name)
    if not path.is_dir():
        shipped = ", ".join(bundled_artifacts()) or "none"
        raise FileNotFoundError(f"no bundled model artifact {name!r} (shipped: {shipped})")
    return path


def migrations_dir() -> Path:
    """The alembic script directory (env.py, versions/)."""
    return _bundled("migrations")
