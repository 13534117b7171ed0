"""The slow tier's schedule: what costs more than a file read (systemctl, timex's perl), read per host
on its own interval in a greenlet of its own, so it never slows a scrape.

The probe asks :meth:`SlowTier.cached` for a host's slow-tier sources on every scrape (the hook in
``Prober._slow_tier``). The answer is what the cache holds *now*: ``(read at, sources)``, or
``None``. Only a host's first scrape, while nothing is cached for it, waits for its first refresh
(as long as the scrape's deadline allows, 5 s at most), so a fresh exporter serves complete hosts;
after that no scrape waits. When the cache is older than ``interval``
and no refresh of that host is under way, one starts in the background: the slow plan's constant
script through the same ``Runner.run(target, command, deadline)`` as a probe, so it travels on the
host's pooled SSH connection, on a channel of its own, bounded by ``timeout``. At most
``concurrency`` refreshes run at once over all hosts (a fan-out's first scrape starts one per host).
A failed refresh keeps the last good sources until they are ``max_age`` old (default five
intervals); after that the host has no slow-tier sources and its slow collectors report failure.
The probe builds the families from the sources, with ``node_scrape_collector_*`` per collector and
the cache's age, like any other collector's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import gevent
from gevent.lock import BoundedSemaphore

from optilab.exporter.targets import Target

if TYPE_CHECKING:
    from optilab.exporter.collectors import Plan

log = logging.getLogger(__name__)

Cached = tuple[float, dict[str, str]]


class Runner(Protocol):
    def run(self, target: Target, command: str, deadline: float) -> str: ...


class SlowTier:
    def __init__(
        self,
        runner: Runner,
        interval: float = 60.0,
        timeout: float = 20.0,
        max_age: float | None = None,
        concurrency: int = 16,
        first_wait: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        spawn: Callable[..., Any] = gevent.spawn,
    ) -> None:
        self.runner, self.interval, self.timeout = runner, interval, timeout
        self.max_age = max_age if max_age is not None else 5 * interval
        self._clock, self._spawn = clock, spawn
        self._slots = BoundedSemaphore(concurrency)
        self._cache: dict[str, Cached] = {}
        self._attempted: dict[str, float] = {}  # host -> clock() when its last refresh started
        self._running: set[str] = set()
        self._greenlets: dict[str, Any] = {}
        self._done: set[str] = set()  # hosts whose refresh has finished at least once
        self.first_wait = first_wait
        self.refreshes = {"success": 0, "failure": 0}

    def cached(self, target: Target, plan: Plan, wait: float = 0.0) -> Cached | None:
        """The host's slow-tier sources as cached now; starts a refresh when due.

        Only while the host has no cached sources at all (its first scrape) does this wait for the
        refresh, ``wait`` seconds at most (capped at ``first_wait``); every later refresh runs while
        scrapes are served from the cache.
        """
        key = str(target)
        now = self._clock()
        last = self._attempted.get(key)
        if key not in self._running and (last is None or now - last >= self.interval):
            self._running.add(key)
            self._attempted[key] = now
            self._greenlets[key] = self._spawn(self._guarded, target, plan)
        greenlet = self._greenlets.get(key)
        if key not in self._cache and wait > 0 and key in self._running and greenlet is not None:
            greenlet.join(timeout=min(wait, self.first_wait))
        entry = self._cache.get(key)
        if entry is not None and now - entry[0] > self.max_age:
            del self._cache[key]
            return None
        return entry

    def tried(self, target: Target) -> bool:
        """Whether a refresh of ``target`` has finished at least once (successfully or not)."""
        return str(target) in self._done

    def refresh(self, target: Target, plan: Plan) -> bool:
        """Read the slow plan's sources from ``target`` now (the greenlet's body); True on success."""
        key = str(target)
        started = self._clock()
        try:
            output = self.runner.run(target, plan.script, started + self.timeout)
        except Exception as exc:  # SshError, a timeout: keep the last answer
            log.info("slow tier %s: refresh failed: %s", key, exc)
            self.refreshes["failure"] += 1
            return False
        sources, complete = plan.split(output)
        if not complete:
            log.info("slow tier %s: answer cut short or unframed (%d bytes)", key, len(output))
            self.refreshes["failure"] += 1
            return False
        self._cache[key] = (self._clock(), sources)
        self.refreshes["success"] += 1
        return True

    def _guarded(self, target: Target, plan: Plan) -> None:
        try:
            with self._slots:
                self.refresh(target, plan)
        except Exception:
            log.exception("slow tier refresh of %s failed", target)
        finally:
            self._done.add(str(target))
            self._running.discard(str(target))
            self._greenlets.pop(str(target), None)

    def forget_except(self, targets: set[str]) -> None:
        """Drop the cache of hosts that left the inventory."""
        for store in (self._cache, self._attempted, self._greenlets):
            for key in [key for key in store if key not in targets]:
                del store[key]
        self._done &= targets
