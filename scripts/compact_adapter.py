"""Copy a model artifact with its LoRA adapter at a lower rank, in float16
(monitor/model/compact.py says how).

    python scripts/compact_adapter.py /work/runs/mpnet-t2 models/finmon-mpnet-v1 --rank 28
"""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.model.artifact import ADAPTER_FILE
from monitor.model.compact import compact_artifact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rank", type=int, required=True)
    args = parser.parse_args()
    worst = compact_artifact(args.artifact, args.out, args.rank)
    size = (args.out / ADAPTER_FILE).stat().st_size / 1e6
    print(f"wrote {args.out}: rank {args.rank}, {size:.1f} MB; worst module keeps {worst:.2%}")


if __name__ == "__main__":
    main()
