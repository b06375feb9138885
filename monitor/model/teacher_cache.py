"""A teacher's logits on a set of rows, kept on disk between training runs.

A pass of a large teacher over the training rows can cost more than the student's whole
training; runs that differ only in the student's recipe (seed, schedule, weights) read the
same rows with the same teacher and reuse it. An entry is keyed by a digest of everything
that decides the logits: the teacher's version (its weights' hash), its ``finmon.json``
(input length, target markers, labels) and the rows it read (text and target, in order).
A changed teacher or changed rows therefore never meet a stale entry; a corrupt entry is
recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

Logits = dict[str, np.ndarray]


def entry_key(version: str, meta_bytes: bytes, rows: Iterable[tuple[str, str]]) -> str:
    """The digest naming one (teacher, rows) pass. Fields are length-prefixed, so no two
    different row lists share a byte stream."""
    digest = hashlib.sha256()
    for part in (version.encode(), meta_bytes):
        digest.update(len(part).to_bytes(8, "big") + part)
    for text, target in rows:
        for field in (text, target):
            encoded = field.encode()
            digest.update(len(encoded).to_bytes(8, "big") + encoded)
    return digest.hexdigest()


class TeacherCache:
    """Logits by :func:`entry_key`, one ``.npz`` per entry in ``directory``; without a
    directory every lookup computes."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def get(self, key: str, compute: Callable[[], Mapping[str, np.ndarray]]) -> Logits:
        if self.directory is None:
            return dict(compute())
        path = self.directory / f"{key}.npz"
        try:
            with np.load(path) as stored:
                logits = {task: stored[task] for task in stored.files}
            return logits
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # absent or unreadable: computed and (re)written below
        logits = dict(compute())
        self.directory.mkdir(parents=True, exist_ok=True)
        # written beside the entry and renamed over it, so a reader never sees half a file
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **logits)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return logits
