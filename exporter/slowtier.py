"""The slow tier: collectors that cost more than a file read (systemctl, nvidia-smi), per host on
their own interval, served from a cache so they never slow a scrape.

:meth:`SlowTier.after_scrape` is the probe's hook: it returns the host's cached families at once
and, when the cache is older than ``interval`` and no refresh of that host is under way, starts one
in its own greenlet. The refresh runs one constant script (built from the slow collectors, framed
like the fast one: :mod:`exporter.command`) through the same ``Runner.run(target, command,
deadline)`` as a probe, so it travels on the host's pooled SSH connection, on a channel of its own.
At most ``concurrency`` refreshes run at once over all hosts.

Every answer carries, per slow collector, ``node_scrape_collector_success`` and
``node_scrape_collector_duration_seconds`` of the last refresh (the duration is the refresh's wall
time: the slow collectors share one script) and ``optilab_collector_cache_age_seconds``, the age
of the families served. A failed refresh keeps serving the last good families, with their growing
age, until they are ``max_age`` old; after that they are dropped and only the status remains.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gevent
from gevent.lock import BoundedSemaphore

from exporter.collectors.base import Collector, CollectorOptions
from exporter.command import build_script, command_names, split_sources
from exporter.config import Target
from exporter.family import Family

log = logging.getLogger(__name__)


class Runner(Protocol):
    def run(self, target: Target, command: str, deadline: float) -> str: ...


@dataclass
class _Cache:
    families: dict[str, list[Family]] = field(default_factory=dict)  # collector -> families
    fetched: dict[str, float] = field(default_factory=dict)  # collector -> clock() of its last success
    success: dict[str, bool] = field(default_factory=dict)
    duration: float = 0.0
    attempted: float | None = None  # clock() when the last refresh started


def slow_collectors(collectors: Iterable[Collector]) -> list[Collector]:
    return [collector for collector in collectors if collector.tier == "slow"]


class SlowTier:
    def __init__(self, runner: Runner, collectors: Sequence[Collector], interval: float = 60.0,
                 timeout: float = 20.0, max_age: float | None = None, concurrency: int = 16,
                 options: dict[str, CollectorOptions] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 spawn: Callable[..., Any] = gevent.spawn) -> None:
        self.runner, self.collectors = runner, list(collectors)
        if any(collector.tier != "slow" for collector in self.collectors):
            raise ValueError("SlowTier takes slow-tier collectors only")
        self.script = build_script(self.collectors)  # one constant string
        self.commands = command_names(self.collectors)
        self.interval, self.timeout = interval, timeout
        self.max_age = max_age if max_age is not None else 5 * interval
        self.options = options or {}
        self._clock, self._spawn = clock, spawn
        self._slots = BoundedSemaphore(concurrency)
        self._cache: dict[str, _Cache] = {}
        self._running: set[str] = set()

    # --- the probe's hook -------------------------------------------------------------------
    def after_scrape(self, target: Target) -> list[Family]:
        """The host's slow-tier families from cache (none before its first refresh); never blocks.

        Starts a background refresh when the cache is due and none is running for this host.
        """
        key = str(target)
        cache = self._cache.setdefault(key, _Cache())
        now = self._clock()
        if key not in self._running and (cache.attempted is None or now - cache.attempted >= self.interval):
            self._running.add(key)
            cache.attempted = now
            self._spawn(self._refresh_guarded, target)
        return self.families(key)

    # ----------------------------------------------------------------------------------------
    def refresh(self, target: Target) -> None:
        """Run the slow script on ``target`` now and update its cache (the greenlet's body)."""
        key = str(target)
        cache = self._cache.setdefault(key, _Cache())
        started = self._clock()
        try:
            output = self.runner.run(target, self.script, started + self.timeout)
        except Exception as exc:  # SshError, a timeout: every slow collector failed this round
            log.info("slow tier %s failed: %s", key, exc)
            cache.duration = self._clock() - started
            cache.success = {collector.name: False for collector in self.collectors}
            return
        sources, complete = split_sources(output, self.commands)
        cache.duration = self._clock() - started
        for collector in self.collectors:
            options = self.options.get(collector.name) or collector.options()
            try:
                if not complete:
                    raise ValueError("answer cut short")
                families = collector.collect(sources, options)
            except Exception as exc:
                log.info("slow collector %s on %s failed: %s", collector.name, key, exc)
                cache.success[collector.name] = False
                continue
            cache.success[collector.name] = True
            cache.families[collector.name] = families
            cache.fetched[collector.name] = self._clock()

    def _refresh_guarded(self, target: Target) -> None:
        try:
            with self._slots:
                self.refresh(target)
        except Exception:
            log.exception("slow tier refresh of %s failed", target)
        finally:
            self._running.discard(str(target))

    def families(self, key: str) -> list[Family]:
        """What the cache of host ``key`` holds now, with its status and age families."""
        cache = self._cache.get(key)
        if cache is None or not cache.success:
            return []
        now = self._clock()
        success = Family("node_scrape_collector_success", "gauge", "node_exporter: Whether a collector succeeded.",
                         ("collector",))
        duration = Family("node_scrape_collector_duration_seconds", "gauge",
                          "node_exporter: Duration of a collector scrape.", ("collector",))
        age = Family("optilab_collector_cache_age_seconds", "gauge",
                     "Age of the slow-tier collector's cached families served on this host, seconds.",
                     ("collector",))
        out: list[Family] = []
        for collector in self.collectors:
            name = collector.name
            success.add((name,), 1.0 if cache.success.get(name) else 0.0)
            duration.add((name,), cache.duration)
            if name in cache.fetched:
                fetched_age = now - cache.fetched[name]
                if fetched_age > self.max_age:
                    cache.families.pop(name, None)
                    continue
                age.add((name,), fetched_age)
                out += cache.families.get(name, [])
        return [*out, success, duration, age]

    def forget_except(self, targets: set[str]) -> None:
        for key in [key for key in self._cache if key not in targets]:
            del self._cache[key]


def to_client(families: Iterable[Family], extra: dict[str, str] | None = None) -> list[Any]:
    """prometheus_client metrics of ``families`` for the v1 probe, which still renders with
    prometheus_client (drop with the v1 probe once it renders :class:`Family` objects)."""
    from prometheus_client.core import Metric

    out = []
    for family in families:
        if not family.samples:
            continue
        base = family.name.removesuffix("_total") if family.type == "counter" else family.name
        metric = Metric(base, family.help, family.type)
        for values, value in family.samples:
            labels = dict(zip(family.labels, values, strict=True))
            for name, label in (extra or {}).items():
                labels.setdefault(name, label)
            metric.add_sample(family.name, labels, value)
        out.append(metric)
    return out
