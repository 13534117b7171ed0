"""How much decompressed remote-write data the bridge holds at once: a byte budget shared by all
request threads, so its total memory is bounded by the budget, not by threads × the largest body.

A request reserves the size its snappy preamble declares before decompressing; when the budget is
spent it waits up to ``wait_s`` for others to finish, then is answered 503 (Prometheus retries with
backoff: overload is shed openly and nothing is lost). After a large request the freed heap is
handed back to the system (glibc ``malloc_trim``), so a burst does not stay resident.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("optilab.bridge.budget")

TRIM_FROM_BYTES = 4 * 1024 * 1024


def _malloc_trim() -> object | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_TRIM = _malloc_trim()


class OverBudgetError(Exception):
    """The budget stayed spent for the whole wait; the request should be answered 503."""


class ByteBudget:
    def __init__(self, total: int, wait_s: float) -> None:
        self.total, self.wait_s = total, wait_s
        self.in_use = 0
        self._cond = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` (at most ``total``) for the duration of the block."""
        nbytes = min(max(nbytes, 0), self.total)
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self.in_use + nbytes > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OverBudgetError(
                        f"{self.in_use} of {self.total} decompressed bytes in use by other "
                        f"requests for {self.wait_s:g} s"
                    )
                self._cond.wait(left)
            self.in_use += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= nbytes
                self._cond.notify_all()
            if nbytes >= TRIM_FROM_BYTES and _TRIM is not None:
                _TRIM(0)  # type: ignore[operator]
