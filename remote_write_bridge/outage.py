"""Log a dependency (broker, database) going away and coming back — one line each, not one (or a
pika traceback) per failed attempt: an 11 s broker outage used to print 640 lines.
"""

from __future__ import annotations

import logging
import threading
import time


def brief(exc: BaseException) -> str:
    """``Type: first line`` of an error, short enough for one log line (no nested reprs)."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Outage:
    """State of one dependency as seen by its users (threads may share one instance)."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log, self.what = log, what
        self.failures = 0
        self._since: float | None = None
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            if self._since is not None:
                return
            self._since = time.monotonic()
        self.log.warning("%s unavailable (%s); retrying quietly until it is back", self.what, brief(exc))

    def ok(self) -> None:
        with self._lock:
            if self._since is None:
                return
            since, failures, self._since, self.failures = self._since, self.failures, None, 0
        self.log.info(
            "%s available again after %.1f s (%d failed attempts)", self.what, time.monotonic() - since, failures
        )
