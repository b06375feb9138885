"""The classifier in its own process, so inference never competes for the worker's GIL.

A torch forward pass on short texts is hundreds of small ops, and the thread running it
takes the GIL back after each one. In the worker, the Faust event loop, the Kafka client and
the SQL store hold the GIL in between, and inference ran 45-60 % slower than alone even with
the CPU a quarter idle (docs/performance.md). Behind a process boundary the model has an
interpreter of its own; the worker only pickles the texts in and the verdicts out (well
under a millisecond per batch).

`ProcessClassifier` implements `Classifier`, so the worker, replay and the tests do not
know where the model runs. This module must not import torch: the worker process then never
loads it, and its memory is spent once, in the inference process.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from monitor.model.interface import Classification, Classifier, ModelInput

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
_classifier: Classifier | None = None  # the loaded model, in the inference process only


def _init_process() -> None:
    """Linux: the kernel ends this process when the worker dies, even by SIGKILL, so no
    orphan keeps the model's memory. Ctrl-C is the worker's to handle: it stops us."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _load(options: dict[str, Any]) -> tuple[str, bool]:
    """Load the model (a task, not the pool's initializer, so that a bad path reaches the
    worker as its own exception); its version."""
    global _classifier
    from monitor.model.batched import load_classifier

    _classifier = load_classifier(**options)
    return _classifier.model_version, _classifier.accepts_targets


def _classify(inputs: list[ModelInput]) -> list[Classification]:
    assert _classifier is not None, "the model is loaded before any batch is sent"
    return _classifier.classify(inputs)


class ProcessClassifier:
    """`monitor.model.batched.load_classifier(**options)` run in a child process.

    Loads the model at construction and fails there if it cannot (a bad artifact path is
    reported at start-up, not at the first batch). Calls from several threads queue for the
    child, which runs them one after the other. If the child dies (killed, out of memory),
    the calls raise `BrokenProcessPool` and one new child is started: the worker's batch
    isolation retries the batch, so a crash costs a reload, not a message.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._restarting = threading.Lock()
        self._pool, (self._version, self._accepts_targets) = self._start()

    def _start(self) -> tuple[ProcessPoolExecutor, tuple[str, bool]]:
        pool = ProcessPoolExecutor(
            max_workers=1,
            # spawn: a fork of a worker that already runs threads (Kafka, scheduler) is unsafe
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_process,
        )
        try:
            return pool, pool.submit(_load, self._options).result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def accepts_targets(self) -> bool:
        return self._accepts_targets

    def classify(self, inputs: Sequence[ModelInput]) -> list[Classification]:
        if not inputs:
            return []
        pool = self._pool
        try:
            return pool.submit(_classify, list(inputs)).result()
        except BrokenProcessPool:
            with self._restarting:  # calls from two threads saw it die: start one child
                if self._pool is pool:
                    log.error("the inference process died; starting a new one")
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool, (self._version, self._accepts_targets) = self._start()
            raise

    def close(self) -> None:
        """Stop the inference process (waits for a running batch)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
