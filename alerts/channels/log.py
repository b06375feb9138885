"""The offline channel: one JSON line per notification, to a file and/or stdout."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from alerts.channels.base import DeliveryError, Notification


class LogChannel:
    def __init__(self, path: Path | None, stdout: bool) -> None:
        self.path = path
        self.stdout = stdout
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        line = notification.body().decode() + "\n"
        try:
            with self._lock:
                if self.path is not None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    with self.path.open("a", encoding="utf-8") as fh:
                        fh.write(line)
                if self.stdout:
                    sys.stdout.write(line)
                    sys.stdout.flush()
        except OSError as exc:
            raise DeliveryError(f"cannot write alert log: {exc}", retryable=True) from exc
