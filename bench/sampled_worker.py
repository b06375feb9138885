"""`python -m bench.sampled_worker`: `finmon worker` with a sampling profiler over all threads.

The worker runs inference and SQL in an executor thread while Faust's event loop and the
Kafka client run in others, and pyinstrument only samples the thread it is started in. This
samples every thread's Python stack from a background thread (``sys._current_frames``) and
rewrites, every few seconds, the file named by ``FINMON_BENCH_SAMPLES``:

* ``<file>`` — collapsed stacks (``thread;outer;...;inner count``, the flame-graph input
  format), and
* ``<file>.txt`` — per thread: the share of samples, and the functions most often on top of
  the stack (where a thread *is*), with their own share.

A sample counts a thread whether it is running or waiting (for the GIL, a lock, or I/O), so
the summary shows where each thread spends wall time, not CPU time. `python -m bench
--profile-worker` starts the end-to-end worker this way (the figures of such a run are not
verdicts: sampling costs the worker some CPU).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

INTERVAL_S = 0.005
WRITE_EVERY_S = 5.0


def _stack(frame: FrameType | None) -> tuple[str, ...]:
    names: list[str] = []
    while frame is not None:
        code = frame.f_code
        module = frame.f_globals.get("__name__", "?")
        names.append(f"{module}.{code.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    return tuple(reversed(names))


class ThreadSampler:
    """Counts (thread name, stack) every `interval` seconds, in a daemon thread."""

    def __init__(self, out: Path, interval: float = INTERVAL_S) -> None:
        self.out = out
        self.interval = interval
        self.stacks: Counter[tuple[str, tuple[str, ...]]] = Counter()
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        me = threading.get_ident()
        next_write = time.monotonic() + WRITE_EVERY_S
        while True:
            time.sleep(self.interval)
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    self.stacks[names.get(ident, str(ident)), _stack(frame)] += 1
            self.samples += 1
            if time.monotonic() >= next_write:
                self.write()
                next_write = time.monotonic() + WRITE_EVERY_S

    def write(self) -> None:
        stacks = self.stacks.copy()
        lines = [f"{';'.join((thread, *stack))} {n}" for (thread, stack), n in stacks.items()]
        self.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.out.with_suffix(self.out.suffix + ".txt").write_text(
            summarise(stacks, self.samples), encoding="utf-8"
        )


PROJECT = ("monitor.", "pipelines.", "alerts.")


def summarise(stacks: Counter[tuple[str, tuple[str, ...]]], samples: int, top: int = 12) -> str:
    """Per thread: finmon's functions by inclusive share, then the innermost frames."""
    leaves: dict[str, Counter[str]] = {}
    inclusive: dict[str, Counter[str]] = {}
    for (thread, stack), n in stacks.items():
        leaves.setdefault(thread, Counter())[stack[-1] if stack else "?"] += n
        ours = {f.rsplit(":", 1)[0] for f in stack if f.startswith(PROJECT)}
        for function in ours:
            inclusive.setdefault(thread, Counter())[function] += n
    out = [f"{samples} samples every {INTERVAL_S * 1000:.0f} ms"]
    for thread, counts in sorted(leaves.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(counts.values())
        out.append(f"\n[{thread}] {total} samples\n  finmon functions (inclusive):")
        for function, n in inclusive.get(thread, Counter()).most_common(top):
            out.append(f"  {100 * n / total:5.1f}%  {function}")
        out.append("  innermost frames:")
        for leaf, n in counts.most_common(top):
            out.append(f"  {100 * n / total:5.1f}%  {leaf}")
    return "\n".join(out) + "\n"


def main() -> None:
    ThreadSampler(Path(os.environ["FINMON_BENCH_SAMPLES"])).start()
    from finmon.cli import main as finmon

    sys.argv = ["finmon", "worker"]
    finmon()


if __name__ == "__main__":
    main()
