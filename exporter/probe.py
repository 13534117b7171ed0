"""One probe of one host: health gate, one framed request under the deadline, collectors, families.

This is the only place that keeps per-host collection state: the previous /proc/stat of each host
(CPU percent is a delta between two reads) and, through :class:`HealthBook`, its health. The SSH side
is injected as a ``runner`` (``SshPool.run`` in production); what runs on the target is the plan's
constant script (``exporter/collectors``: one per set of enabled collectors), never built from request
input (tests may swap in a ``script`` that hangs). Each collector turns the answer's sources into
families on its own: one that fails costs only its own series and reports
``node_scrape_collector_success{collector} 0``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol

from optilab.exporter.collectcache import CollectCache
from optilab.exporter.collectors import Plan, make_plan, restrict, seats
from optilab.exporter.collectors.lab import NAME as LAB
from optilab.exporter.config import HostEntry
from optilab.exporter.family import Family
from optilab.exporter.health import HealthBook, Transition, is_jump_reason
from optilab.exporter.metrics import (
    HostLabels,
    collector_families,
    cpu_usage_percent,
    lab_families,
    probe_families,
    seat_families,
)
from optilab.exporter.metrics_session import session_families
from optilab.exporter.parsers_proc import Stat, parse_stat_cached
from optilab.exporter.parsers_seat import SeatReading, seat_state
from optilab.exporter.slowtier import SlowTier
from optilab.exporter.ssherror import SshError
from optilab.exporter.targets import Target

log = logging.getLogger(__name__)

#: Series one host may add to an answer before the rest of its collectors' series are left out.
DEFAULT_SERIES_CAP = 20_000
#: Seconds between refreshes of the slow tier (timex: a program start per refresh), served from cache.
SLOW_INTERVAL = 60.0
#: A slow-tier refresh starts only if the deadline leaves at least this much time (perl's adjtimex
#: takes ~10 ms; a 1 s scrape interval leaves ~0.5 s).
SLOW_BUDGET = 0.2


_SAMPLES = attrgetter("samples")


class Runner(Protocol):
    def run(self, target: Target, command: str, deadline: float) -> str: ...


@dataclass(frozen=True)
class ProbeResult:
    families: list[Family]
    success: bool
    reason: str | None  # docs/interfaces.md reasons; None on success
    state: str  # health state after this probe
    duration: float
    labels: HostLabels


_DEFAULT_PLAN = make_plan()
#: families that a collector reports whatever the host answered: no proof that the answer was usable
_NOT_EVIDENCE = {"node_textfile_scrape_error", "node_textfile_mtime_seconds"}


class Prober:
    def __init__(
        self,
        runner: Runner,
        health: HealthBook,
        script: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Callable[[Transition, HostLabels], None] | None = None,
        plans: Callable[[HostEntry], Plan] | None = None,
        series_cap: int = DEFAULT_SERIES_CAP,
        timer: Callable[[], float] = time.perf_counter,
        slow_interval: float = SLOW_INTERVAL,
    ) -> None:
        self.runner, self.health, self.script, self._clock, self._timer = runner, health, script, clock, timer
        self.on_transition = on_transition
        self.plans = plans or (lambda entry: _DEFAULT_PLAN)
        self.series_cap = series_cap
        self.series_cap_hits = 0  # probes that hit the cap (the exporter's own metrics read this)
        self._capped: set[str] = set()  # hosts whose cap hit was logged already
        self._previous: dict[str, Stat] = {}
        self.collect_cache = CollectCache(max_series=series_cap)  # unchanged sources: last scrape's families
        self._nodenames: dict[str, str] = {}
        self.slow_interval = slow_interval
        self.slow = SlowTier(runner, interval=slow_interval, clock=clock)  # col-sys: cache, background refresh

    def probe(self, entry: HostEntry, deadline: float, collect: frozenset[str] | None = None) -> ProbeResult:
        """Probe ``entry`` now, or answer from its health state while it waits out a backoff.

        ``collect``: only these collectors (``/probe?collect[]=``, names the caller has checked); the
        target then runs a script that reads only what they read. Seat families come only with the
        ``seats`` collector, and a probe without ``/proc/stat`` leaves the host's CPU baseline alone,
        so a filtered job beside the full one does not disturb it."""
        key = str(entry.target)
        started = self._clock()
        seated = collect is None or seats.NAME in collect
        if not self.health.may_dial(key):
            labels = self.labels(entry)
            state = self.health.get(key).state
            families = probe_families(labels, False, 0.0, state, "backoff")
            if seated:
                families += _seats(entry, None, False, labels)
            return ProbeResult(families, False, "backoff", state, 0.0, labels)
        plan = self.plans(entry) if collect is None else restrict(self.plans(entry), collect)
        try:
            output = self.runner.run(entry.target, self.script or plan.script, deadline)
        except SshError as exc:
            log.info("probe %s failed: %s", key, exc)
            return self._failed(entry, exc.reason, started, seated)
        sources, complete = plan.split(output)
        if not complete:  # cut short, or not our script's answer at all
            log.info("probe %s: answer cut short or unframed (%d bytes)", key, len(output))
            return self._failed(entry, "protocol", started, seated)
        nodename = sources.get("/proc/sys/kernel/hostname", "").strip()
        if nodename:
            self._nodenames[key] = nodename
        labels = self.labels(entry)
        families, results, lab = self._collect(key, plan, sources)
        # a filter may choose collectors that have nothing on this host (no md, no bonds): no evidence
        if collect is None and not any(family.samples for family in families if family.name not in _NOT_EVIDENCE):
            log.info("probe %s: no collector could use the answer: not a Linux shell?", key)
            return self._failed(entry, "parse", started, seated)
        if plan.slow is not None:
            slow, ages = self._slow_tier(entry, plan.slow, deadline)
            families += slow[0]
            results.update(slow[1])
        families, dropped = self._cap(key, families)
        stat = None
        if "/proc/stat" in sources:
            try:
                stat = parse_stat_cached(sources["/proc/stat"])
            except ValueError:
                stat = None
        previous = self._previous.get(key)
        cpu = cpu_usage_percent(stat, previous) if stat is not None and previous is not None else None
        families += collector_families(results)
        if plan.slow is not None:
            families += ages
        families += lab_families(lab, cpu, labels)
        if seated:
            families += _seats(entry, seats.reading(sources), True, labels)
        transition = self.health.record_success(key)
        duration = self._clock() - started
        families += probe_families(labels, True, duration, "healthy", None, dropped)
        families += session_families(self.runner, entry.target)
        if stat is not None:
            self._previous[key] = stat
        elif "/proc/stat" in sources or collect is None:  # unreadable, or not a Linux answer
            self._previous.pop(key, None)
        self._announce(transition, labels)
        return ProbeResult(families, True, None, "healthy", duration, labels)

    def _collect(
        self, key: str, plan: Plan, sources: dict[str, str]
    ) -> tuple[list[Family], dict[str, tuple[bool, float]], list[Family]]:
        """Run every collector of the plan on the sources: (families, {name: (ok, seconds)}, lab's)."""
        families: list[Family] = []
        lab: list[Family] = []
        results: dict[str, tuple[bool, float]] = {}
        memo = self.collect_cache.host(key, sources)
        for collector, options in plan.collectors:
            began = self._timer()
            ok, built, _hit = memo.collect(collector, options)
            (lab if collector.name == LAB else families).extend(built)
            results[collector.name] = (ok, self._timer() - began)
        return families, results, lab

    def _slow_tier(
        self, entry: HostEntry, plan: Plan, deadline: float
    ) -> tuple[tuple[list[Family], dict[str, tuple[bool, float]], list[Family]], list[Family]]:
        """The slow collectors on their cached sources (refreshed in the background once older than the
        interval: exporter/slowtier.py); plus ``optilab_scrape_collector_cache_age_seconds{collector}``."""
        key = str(entry.target)
        wait = max(0.0, deadline - self._clock() - SLOW_BUDGET)  # only a host's first scrape ever waits
        cached = self.slow.cached(entry.target, plan, wait)  # col-sys: refreshed in its own greenlet (slowtier.py)
        tried = self.slow.tried(entry.target)  # a refresh has finished (and left nothing)
        age = Family(
            "optilab_scrape_collector_cache_age_seconds",
            "gauge",
            "Seconds since the slow-tier collector's sources were read from the host.",
            ("collector",),
        )
        if cached is None:  # never read: failed if it was tried, else not reported until it is
            failed = {c.name: (False, 0.0) for c, _ in plan.collectors} if tried else {}
            return ([], failed, []), [age]
        for collector, _ in plan.collectors:
            age.add((collector.name,), max(0.0, self._clock() - cached[0]))
        return self._collect(key, plan, cached[1]), [age]

    def _cap(self, key: str, families: list[Family]) -> tuple[list[Family], int]:
        """Keep whole families, in collector order, up to the per-host series cap."""
        total = sum(map(len, map(_SAMPLES, families)))  # no Python frame per family
        if total <= self.series_cap:
            return families, 0
        kept, count = [], 0
        for family in families:
            if count + len(family.samples) > self.series_cap:
                break
            kept.append(family)
            count += len(family.samples)
        self.series_cap_hits += 1
        if key not in self._capped:
            self._capped.add(key)
            log.warning(
                "probe %s: %d series exceed the cap of %d per host; %d left out (logged once per host)",
                key,
                total,
                self.series_cap,
                total - count,
            )
        return kept, total - count

    def labels(self, entry: HostEntry) -> HostLabels:
        """Lab labels: the inventory's name, else the host's own nodename once read, else its address."""
        key = str(entry.target)
        hostname = entry.hostname or self._nodenames.get(key) or entry.target.host
        return HostLabels(hostname=hostname, ip=entry.target.host, department=entry.department)

    def forget_except(self, targets: set[str]) -> None:
        """Drop state of hosts that left the inventory (after a reload)."""
        for store in (self._previous, self._nodenames):
            for key in [k for k in store if k not in targets]:
                del store[key]
        self.slow.forget_except(targets)
        self.collect_cache.forget_except(targets)
        self._capped &= targets
        self.health.forget_except(targets)

    def _failed(self, entry: HostEntry, reason: str, started: float, seated: bool = True) -> ProbeResult:
        key = str(entry.target)
        self._previous.pop(key, None)  # a gap (reboot?) must not become one giant CPU delta
        # a bastion failure is not this host's: it keeps its state (the bastion has its own, exporter/jump.py)
        transition = None if is_jump_reason(reason) else self.health.record_failure(key, reason)
        state = self.health.get(key).state
        labels = self.labels(entry)
        duration = self._clock() - started
        self._announce(transition, labels)
        families = probe_families(labels, False, duration, state, reason)
        if seated:  # not for a collect[] filter without seats
            families += _seats(entry, None, False, labels)
        families += session_families(self.runner, entry.target)
        return ProbeResult(families, False, reason, state, duration, labels)

    def _announce(self, transition: Transition | None, labels: HostLabels) -> None:
        if transition is not None and self.on_transition is not None:
            try:
                self.on_transition(transition, labels)
            except Exception:
                log.exception("health transition hook failed for %s", transition.target)


def _seats(entry: HostEntry, reading: SeatReading | None, reachable: bool, labels: HostLabels) -> list[Family]:
    """Seat families of this probe: the state from the seats command, the inventory and reachability."""
    state = seat_state(
        reading, reachable=reachable, maintenance=entry.maintenance, idle_after_s=entry.idle_minutes * 60
    )
    return seat_families(state, reading, labels)
