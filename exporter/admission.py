"""Overload is the exporter's problem, not the hosts': a request limit, shared collections, shared answers.

* :class:`Admission` caps the ``/probe`` requests in flight, as node_exporter's
  ``--web.max-requests`` does (fan-outs to a quarter of the limit, so they cannot crowd out
  single-target scrapes): beyond the limit a request is answered 503 at once and counted
  (``optilab_exporter_requests_shed_total``), instead of queueing until every probe in the process
  times out and the hosts get the blame. A request holds its place only while it collects and
  renders; writing the answer to a slow client does not hold one.
* :class:`Flights` makes concurrent probes of one host share one collection (single-flight): one
  exec, one health record, one answer for all who asked while it ran. Concurrent identical
  fan-outs (the whole lab, or one department) share one rendered answer the same way. A probe
  joins a flight only if the flight will be done by the probe's own deadline; otherwise it waits
  for the flight until its deadline and answers a failed probe without counting it.
* A probe that would start too late to give its host a chance (its deadline is already upon it)
  answers a failed probe with reason ``overload`` and dials nothing; an exporter bug while probing
  one host costs that host's series only (reason ``internal``). Neither moves the host's health
  (``exporter.health.NOT_EVIDENCE``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import gevent.event

from optilab.exporter.config import HostEntry
from optilab.exporter.metrics import probe_families
from optilab.exporter.overload import probe_window
from optilab.exporter.probe import Prober, ProbeResult

Answer = TypeVar("Answer")  # whatever an answer is to its caller (http.py: bytes or pieces)

log = logging.getLogger("optilab.exporter.admission")

#: a collection needs at least this much time left to be worth starting
MIN_START_SECONDS = 0.05


class Admission:
    """At most ``limit`` requests in flight (0: no limit), fan-outs at most a quarter of them (at least
    one), so whole-lab requests can never crowd out Prometheus's single-target scrapes; the rest are
    shed and counted."""

    def __init__(self, limit: int) -> None:
        self.limit, self.fan_out_limit = limit, max(1, limit // 4)
        self.in_flight = self.fan_outs = self.shed = 0

    def try_enter(self, fan_out: bool = False) -> bool:
        if self.limit and (self.in_flight >= self.limit or (fan_out and self.fan_outs >= self.fan_out_limit)):
            self.shed += 1
            return False
        self.in_flight += 1
        self.fan_outs += fan_out
        return True

    def leave(self, fan_out: bool = False) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.fan_outs = max(0, self.fan_outs - fan_out)


class _Flight:
    """One collection (or one answer) in progress; joiners wait on ``done``."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.done = gevent.event.AsyncResult()

    def wait(self, deadline: float, clock: Callable[[], float]) -> Any:
        """The flight's result, or None when it is not done by ``deadline`` (or it failed)."""
        try:
            return self.done.get(timeout=max(0.0, deadline - clock()))
        except (gevent.Timeout, RuntimeError):
            return None


class Flights:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hosts: dict[str, _Flight] = {}
        self._answers: dict[Hashable, _Flight] = {}
        self.shared: Counter[str] = Counter()  # joins by kind: host, answer

    def probe(
        self, prober: Prober, entry: HostEntry, deadline: float, started: float, collect: frozenset[str] | None = None
    ) -> ProbeResult:
        """``prober.probe(entry, deadline, collect)``, shared with concurrent probes of the same host
        and the same ``collect[]`` filter — a fan-out's and a single target's alike: the families
        carry no request labels (a fan-out's ``instance`` and ``department`` are added when they are
        rendered).

        ``started``: when the request began (its queueing before this call is the exporter's time)."""
        key = str(entry.target) if collect is None else f"{entry.target} collect[]={','.join(sorted(collect))}"
        running = self._hosts.get(key)
        if running is not None:
            return self._join(running, prober, entry, deadline)
        flight = self._hosts[key] = _Flight(deadline)
        result: ProbeResult | None = None
        try:
            if deadline - self._clock() < MIN_START_SECONDS:
                result = failed_probe(prober, entry, "overload")
            else:
                with probe_window(started):
                    result = prober.probe(entry, deadline, collect)
        except Exception:  # one host's failure costs that host's series only
            log.exception("probe of %s failed inside the exporter", key)
            result = failed_probe(prober, entry, "internal")
        finally:
            if self._hosts.get(key) is flight:
                del self._hosts[key]
            flight.done.set(result)
        return result

    def answer(self, key: Hashable, deadline: float, produce: Callable[[], Answer]) -> Answer:
        """``produce()``, shared with concurrent callers of the same ``key`` whose ``deadline`` is no
        earlier than the running one's (they get its very answer: an immutable body, shared)."""
        running = self._answers.get(key)
        if running is not None and running.deadline <= deadline:
            body = running.wait(deadline, self._clock)
            if body is not None:
                self.shared["answer"] += 1
                return body
        flight = _Flight(deadline)
        if running is None:
            self._answers[key] = flight
        body = None
        try:
            body = produce()
            return body
        finally:
            if self._answers.get(key) is flight:
                del self._answers[key]
            flight.done.set(body)

    def _join(self, running: _Flight, prober: Prober, entry: HostEntry, deadline: float) -> ProbeResult:
        result: ProbeResult | None = running.wait(deadline, self._clock)
        self.shared["host"] += 1
        if result is None:  # still collecting at our deadline: the flight's own probe will count it
            return failed_probe(prober, entry, "timeout")
        return result


def failed_probe(prober: Prober, entry: HostEntry, reason: str) -> ProbeResult:
    """A failed answer for ``entry`` that dialled nothing and records nothing (state as it is)."""
    labels = prober.labels(entry)
    state = prober.health.get(str(entry.target)).state
    return ProbeResult(probe_families(labels, False, 0.0, state, reason), False, reason, state, 0.0, labels)
