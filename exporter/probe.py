"""One probe of one host: health gate, one batched exec under the deadline, parse, metric families.

This is the only place that keeps per-host collection state: the previous snapshot of each host
(CPU percent is a delta between two reads of /proc/stat) and, through :class:`HealthBook`, its
health. The SSH side is injected as a ``runner`` (``SshPool.run`` in production) and the remote
command as ``script`` (``BATCH_SCRIPT``; tests swap in a command that hangs) — the script is never
built from request input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import Metric

from exporter.command import BATCH_SCRIPT, SECTIONS, split_sections
from exporter.config import HostEntry, Target
from exporter.health import HealthBook, Transition
from exporter.hostkeys import SshError
from exporter.metrics import HostLabels, probe_families, seat_families, snapshot_families
from exporter.metrics_node import NO_EXTRA, Extra
from exporter.parsers import HostSnapshot, parse_snapshot
from exporter.parsers_seat import seat_state

log = logging.getLogger(__name__)


class Runner(Protocol):
    def run(self, target: Target, command: str, deadline: float) -> str: ...


@dataclass(frozen=True)
class ProbeResult:
    families: list[Metric]
    success: bool
    reason: str | None  # docs/interfaces.md reasons; None on success
    state: str  # health state after this probe
    duration: float
    labels: HostLabels


class Prober:
    def __init__(self, runner: Runner, health: HealthBook, script: str = BATCH_SCRIPT,
                 clock: Callable[[], float] = time.monotonic,
                 on_transition: Callable[[Transition, HostLabels], None] | None = None) -> None:
        self.runner, self.health, self.script, self._clock = runner, health, script, clock
        self.on_transition = on_transition
        self._previous: dict[str, HostSnapshot] = {}
        self._nodenames: dict[str, str] = {}

    def probe(self, entry: HostEntry, deadline: float, extra: Extra = NO_EXTRA) -> ProbeResult:
        """Probe ``entry`` now, or answer from its health state while it waits out a backoff.

        ``extra``: labels for every series of this probe (a fan-out's ``instance`` and ``department``).
        """
        key = str(entry.target)
        started = self._clock()
        if not self.health.may_dial(key):
            labels = self.labels(entry)
            state = self.health.get(key).state
            families = probe_families(labels, False, 0.0, state, "backoff", extra)
            families += _seats(entry, None, False, labels, extra)
            return ProbeResult(families, False, "backoff", state, 0.0, labels)
        try:
            output = self.runner.run(entry.target, self.script, deadline)
        except SshError as exc:
            log.info("probe %s failed: %s", key, exc)
            return self._failed(entry, exc.reason, started, extra)
        sections, complete = split_sections(output)
        snapshot, errors = parse_snapshot(sections, complete)
        if not complete or len(errors) >= len(SECTIONS):
            reason = "protocol" if not complete else "parse"  # cut short / not a Linux shell at all
            log.info("probe %s: unusable output (%s): %s", key, reason, dict(list(errors.items())[:3]))
            return self._failed(entry, reason, started, extra)
        if snapshot.uname is not None:
            self._nodenames[key] = snapshot.uname.nodename
        labels = self.labels(entry)
        try:
            families = snapshot_families(snapshot, self._previous.get(key), labels, errors, extra)
            families += _seats(entry, snapshot, True, labels, extra)
        except Exception:  # one host's odd output must not fail a whole fan-out
            log.exception("probe %s: building metrics failed", key)
            return self._failed(entry, "parse", started, extra)
        transition = self.health.record_success(key)
        duration = self._clock() - started
        families += probe_families(labels, True, duration, "healthy", None, extra)
        self._previous[key] = snapshot
        self._announce(transition, labels)
        return ProbeResult(families, True, None, "healthy", duration, labels)

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
        self.health.forget_except(targets)

    def _failed(self, entry: HostEntry, reason: str, started: float, extra: Extra) -> ProbeResult:
        key = str(entry.target)
        self._previous.pop(key, None)  # a gap (reboot?) must not become one giant CPU delta
        transition = self.health.record_failure(key, reason)
        state = self.health.get(key).state
        labels = self.labels(entry)
        duration = self._clock() - started
        self._announce(transition, labels)
        families = probe_families(labels, False, duration, state, reason, extra)
        families += _seats(entry, None, False, labels, extra)
        return ProbeResult(families, False, reason, state, duration, labels)

    def _announce(self, transition: Transition | None, labels: HostLabels) -> None:
        if transition is not None and self.on_transition is not None:
            try:
                self.on_transition(transition, labels)
            except Exception:
                log.exception("health transition hook failed for %s", transition.target)


def _seats(entry: HostEntry, snapshot: HostSnapshot | None, reachable: bool, labels: HostLabels,
           extra: Extra) -> list[Metric]:
    """Seat families of this probe: the state from the seats section, the inventory and reachability."""
    reading = snapshot.seats if snapshot is not None else None
    state = seat_state(reading, reachable=reachable, maintenance=entry.maintenance,
                       idle_after_s=entry.idle_minutes * 60)
    return seat_families(state, reading, labels, extra)
