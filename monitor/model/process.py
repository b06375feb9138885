"""The classifier in its own process, so inference never competes for the worker's GIL.

A torch forward pass on short texts is hundreds of small ops, and the thread running it
takes the GIL back after each one. In the worker, the Faust event loop, the Kafka client and
the SQL store hold the GIL in between, and inference ran far slower than alone even with
CPU to spare (docs/performance.md). Behind a process boundary the model has an interpreter
of its own; the worker only pickles the texts in and the verdicts out, which costs little
next to inference.

`ProcessClassifier` implements `Classifier`, so the worker, replay and the tests do not
know where the model runs. This module must not import torch: the worker process then never
loads it, and its memory is spent once, in the inference process.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from monitor.model.interface import Classification, Classifier, ModelInput

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
_classifier: Classifier | None = None  # the loaded model, in the inference process only
RESTART_PAUSE_S = 1.0
RESTART_PAUSE_MAX_S = 30.0


def _init_process() -> None:
    """Linux: the kernel ends this process when the worker dies, even by SIGKILL, so no
    orphan keeps the model's memory. Ctrl-C is the worker's to handle: it stops us."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _load(options: dict[str, Any]) -> tuple[str, bool, int]:
    """Load the model (a task, not the pool's initializer, so that a bad path reaches the
    worker as its own exception); its version, whether it accepts targets, and this
    process's id."""
    global _classifier
    from monitor.model.batched import load_classifier

    _classifier = load_classifier(**options)
    return _classifier.model_version, _classifier.accepts_targets, os.getpid()


def _classify(inputs: list[ModelInput]) -> list[Classification]:
    assert _classifier is not None, "the model is loaded before any batch is sent"
    return _classifier.classify(inputs)


class ProcessClassifier:
    """`monitor.model.batched.load_classifier(**options)` run in a child process.

    Loads the model at construction and fails there if it cannot (a bad artifact path is
    reported at start-up, not at the first batch). Calls from several threads queue for the
    child, which runs them one after the other. If the child dies (killed, out of memory), a
    supervisor thread sees it at once and starts a new child; `ready()` is false from the
    death until the new child has loaded the model, and calls made meanwhile wait for it.
    A call that was running when the child died raises `BrokenProcessPool`: the worker's
    batch isolation retries the batch, so a crash costs a reload, not a message.

    New children are started by the supervisor alone, a thread that lives as long as this
    object: the kernel ends a child whose starting thread exits (`_init_process`).
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._state = threading.Condition()
        """Guards the fields below; notified when a new child serves or on close."""
        self._closed = False
        self._serving = False
        self._pool, self._version, self._accepts_targets, child = self._start()
        self._serving = True
        self._supervisor = threading.Thread(
            target=self._supervise, args=(child,), name="finmon-inference-supervisor", daemon=True
        )
        self._supervisor.start()

    def _start(self) -> tuple[ProcessPoolExecutor, str, bool, BaseProcess]:
        pool = ProcessPoolExecutor(
            max_workers=1,
            # spawn: a fork of a worker that already runs threads (Kafka, scheduler) is unsafe
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_process,
        )
        try:
            version, accepts_targets, pid = pool.submit(_load, self._options).result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        [child] = [p for p in multiprocessing.active_children() if p.pid == pid]
        return pool, version, accepts_targets, child

    def _supervise(self, child: BaseProcess) -> None:
        """Each time the child exits, unless on purpose, start a new one (retrying with a
        growing pause if that fails, until `close`: calls wait meanwhile, and `ready()` says
        so)."""
        while True:
            wait([child.sentinel])
            with self._state:
                if self._closed:
                    return
                self._serving = False
                dead = self._pool
            log.error("the inference process died; starting a new one")
            dead.shutdown(wait=False, cancel_futures=True)
            pause = RESTART_PAUSE_S
            while True:
                try:
                    pool, version, _, child = self._start()
                    break
                except Exception:
                    log.exception("the inference process could not start; retrying in %ss", pause)
                    with self._state:  # close() ends the retries as well as the service
                        if self._state.wait_for(lambda: self._closed, timeout=pause):
                            return
                    pause = min(pause * 2, RESTART_PAUSE_MAX_S)
            with self._state:
                self._pool, self._version, self._serving = pool, version, True
                self._state.notify_all()
                if self._closed:  # closed while the new child loaded
                    pool.shutdown(wait=False, cancel_futures=True)
                    return

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def accepts_targets(self) -> bool:
        return self._accepts_targets

    def ready(self) -> bool:
        """False from the child's death until a new one has loaded the model, and after
        `close`."""
        return self._serving and not self._closed

    def classify(self, inputs: Sequence[ModelInput]) -> list[Classification]:
        if not inputs:
            return []
        with self._state:  # waits while a new child loads the model
            self._state.wait_for(lambda: self._serving or self._closed)
            future = self._pool.submit(_classify, list(inputs))
        return future.result()

    def close(self) -> None:
        """Stop the inference process (waits for a running batch)."""
        with self._state:
            self._closed = True
            self._state.notify_all()
            pool = self._pool
        pool.shutdown(wait=True, cancel_futures=True)
