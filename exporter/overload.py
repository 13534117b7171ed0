"""Who is to blame for a probe that ran out of time: the host, or the exporter itself?

A host's health state may move only on evidence about that host (docs/exporter.md, "Health
states"). A timeout is such evidence only when the host had the exporter's attention for most of the
probe's time. Two kinds of time belong to the exporter, not to the host:

* **queueing**: waiting for one of the exporter's own slots — a dial slot
  (``pool.max_concurrent_dials``), room under ``pool.max_connections``, a channel slot of a pooled
  connection, a place in the fan-out's ``probe.concurrency``. :class:`QueueSlots` is the semaphore
  the pool uses for those; it adds every wait to the current greenlet's account.
* **stalls**: the event loop not running at all because the process (or the machine) is saturated
  with CPU work — rendering big answers, key exchanges, other processes. :class:`LoopMonitor` ticks
  every ``interval`` seconds and keeps how late each tick came.

:func:`timeout_reason` turns a timeout into ``timeout`` (the host's fault: counts against its
health) or ``overload`` (the exporter's: answered as a failed probe with that reason, health
untouched). The rule: if queueing plus stalls took more than half of the probe's time so far, the
host did not get a fair chance. The probe's start comes from :func:`probe_window` (set by
``exporter.admission.Flights`` around each collection); without it, the SSH call's own start counts.

gevent-only (greenlet-local context variables, a ticking greenlet); no monkey patching needed here.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator

import gevent
import gevent.lock

#: a timeout counts against the host only if the exporter took at most this share of the probe's time
FAIR_SHARE = 0.5

_queued: contextvars.ContextVar[float] = contextvars.ContextVar("optilab_queued_seconds", default=0.0)
_probe_started: contextvars.ContextVar[float | None] = contextvars.ContextVar("optilab_probe_started", default=None)


class QueueSlots(gevent.lock.BoundedSemaphore):
    """A bounded semaphore whose waits are the exporter's queueing, added to the greenlet's account."""

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not self.locked() or not blocking:
            return super().acquire(blocking, timeout)
        waited = time.monotonic()
        try:
            return super().acquire(blocking, timeout)
        finally:  # also when a deadline fires while waiting: that wait was ours, not the host's
            _queued.set(_queued.get() + time.monotonic() - waited)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class LoopMonitor:
    """How long the event loop could not run: each tick's lateness, kept for ``keep`` seconds."""

    def __init__(
        self, interval: float = 0.05, keep: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval, self._clock = interval, clock
        self._lags: collections.deque[tuple[float, float]] = collections.deque(maxlen=int(keep / interval))
        self._last = clock()
        self._ticker: gevent.Greenlet | None = None

    def start(self) -> LoopMonitor:
        if self._ticker is None:
            self._last = self._clock()
            self._ticker = gevent.spawn(self._tick_forever)
        return self

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.kill(block=False)
            self._ticker = None

    def tick(self) -> None:
        """Record one tick now (the ticker calls it; tests call it with a stepped clock)."""
        now = self._clock()
        lag = now - self._last - self.interval
        if lag > 0.001:
            self._lags.append((now, lag))
        self._last = now

    def stalled(self, since: float) -> float:
        """Seconds since ``since`` that the loop was stalled, including a stall still going on."""
        now, total = self._clock(), 0.0
        for end, lag in reversed(self._lags):  # newest first: stop at the window's start
            if end <= since:
                break
            total += min(lag, end - since)
        if self._ticker is not None:  # the stall we are in: our own wake-up may have come first
            total += max(0.0, now - max(self._last, since) - self.interval)
        return total

    def _tick_forever(self) -> None:
        while True:
            gevent.sleep(self.interval)
            self.tick()


@contextlib.contextmanager
def probe_window(started: float) -> Iterator[None]:
    """Mark the current greenlet's probe as started at ``started`` (before its own queueing)."""
    token = _probe_started.set(started)
    queued = _queued.set(0.0)
    try:
        yield
    finally:
        _queued.reset(queued)
        _probe_started.reset(token)


def call_started() -> float:
    """Open an SSH call's account (its slot waits start at zero); returns the call's start."""
    _queued.set(0.0)
    return time.monotonic()


def timeout_reason(call_start: float, monitor: LoopMonitor | None, clock: Callable[[], float] = time.monotonic) -> str:
    """``timeout`` when the host had most of the probe's time so far, else ``overload``.

    The probe's time runs from :func:`probe_window`'s start (or the call's); the exporter's share is
    the wait before the call, the slot waits inside it and the loop's stalls during it."""
    window = _probe_started.get()
    window = call_start if window is None else min(window, call_start)
    elapsed = clock() - window
    if elapsed <= 0:
        return "overload"
    ours = (call_start - window) + _queued.get() + (monitor.stalled(call_start) if monitor else 0.0)
    return "overload" if ours > FAIR_SHARE * elapsed else "timeout"
