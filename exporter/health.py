"""Per-host health states, so that machines which are off cost (almost) nothing to scrape.

Each host counts its consecutive failed probes. The count picks the state (defaults: 1–2 failures
degraded, 3–5 offline, 6+ dead) and the state picks how long the exporter waits before it dials
that host again (defaults 10 min, 1 h, 24 h, each jittered ±10 % so a lab that went down together
does not come back as one thundering herd). While a host waits, a probe answers at once from its
state (success 0, reason ``backoff``) without touching the network. The first probe after the wait
is a real dial; one success puts the host back to healthy with no waiting at all.

*Healthy* has no interval: a healthy host is dialled on every scrape, Prometheus's
``scrape_interval`` playing the part of the design document's "healthy: 5 min" polling period.

The book is pure: the clock and the random source are injected, so tests step through hours of
backoff in microseconds.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from optilab.exporter.config import HealthSettings
from optilab.toolkit.contract import HEALTH_STATES, JUMP_REASONS

log = logging.getLogger("optilab.exporter.health")


#: failure reasons that are no evidence about the host, so they never move its state: ``overload``
#: (the exporter's own queueing or CPU, see exporter/overload.py) and ``internal`` (an exporter bug)
NOT_EVIDENCE = frozenset({"overload", "internal"})


@dataclass
class HostHealth:
    state: str = "healthy"
    failures: int = 0
    retry_at: float = 0.0  # clock time before which the host is not dialled
    reason: str | None = None  # reason of the last failure


@dataclass(frozen=True)
class Transition:
    """A change of state, published as a ``health`` event and counted in self-metrics."""

    target: str
    before: str
    after: str
    reason: str | None
    failures: int


class HealthBook:
    """The health of every host the exporter has probed, keyed by target identity ``HOST:PORT``."""

    def __init__(
        self,
        settings: HealthSettings,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._clock, self._rng = clock, rng
        self._hosts: dict[str, HostHealth] = {}
        self.transitions: Counter[tuple[str, str]] = Counter()

    def get(self, target: str) -> HostHealth:
        return self._hosts.get(target) or HostHealth()

    def may_dial(self, target: str) -> bool:
        """False while the host waits out its state's interval (answer from state instead)."""
        return self._clock() >= self.get(target).retry_at

    def wait_left(self, target: str) -> float:
        return max(0.0, self.get(target).retry_at - self._clock())

    def record_success(self, target: str) -> Transition | None:
        host = self._hosts.setdefault(target, HostHealth())
        host.failures, host.retry_at, host.reason = 0, 0.0, None
        return self._move(target, host, "healthy", None)

    def record_failure(self, target: str, reason: str) -> Transition | None:
        """Count a failed probe; from now on the host waits the interval of its (new) state.

        Reasons in :data:`NOT_EVIDENCE` are not counted: the host keeps its state and its wait."""
        if reason in NOT_EVIDENCE:
            return None
        host = self._hosts.setdefault(target, HostHealth())
        host.failures += 1
        host.reason = reason
        state = self.state_for(host.failures)
        host.retry_at = self._clock() + self._jittered(self.interval(state))
        return self._move(target, host, state, reason)

    def state_for(self, failures: int) -> str:
        s = self.settings
        if failures >= s.dead_after:
            return "dead"
        if failures >= s.offline_after:
            return "offline"
        if failures >= s.degraded_after:
            return "degraded"
        return "healthy"

    def interval(self, state: str) -> float:
        """Seconds between real dials for a host in ``state`` (0 for healthy: every scrape)."""
        s = self.settings
        return {
            "healthy": 0.0,
            "degraded": s.degraded_interval,
            "offline": s.offline_interval,
            "dead": s.dead_interval,
        }[state]

    def counts(self, targets: Iterable[str]) -> dict[str, int]:
        """Hosts per state among ``targets`` (never-probed hosts count as healthy)."""
        counts = dict.fromkeys(HEALTH_STATES, 0)
        for target in targets:
            counts[self.get(target).state] += 1
        return counts

    def forget_except(self, targets: Iterable[str]) -> None:
        """Drop hosts that left the inventory, so a reload does not leak state."""
        keep = set(targets)
        for target in [t for t in self._hosts if t not in keep]:
            del self._hosts[target]

    def retry_now(self, targets: Iterable[str]) -> list[str]:
        """End the wait of ``targets`` (after a change of SSH settings): each is dialled at its next
        probe, keeping its state and failure count until that probe gives evidence. Returns the
        targets that were waiting."""
        now, cleared = self._clock(), []
        for target in targets:
            host = self._hosts.get(target)
            if host is not None and host.retry_at > now:
                host.retry_at = now
                cleared.append(target)
        return cleared

    def _jittered(self, seconds: float) -> float:
        return seconds * (1.0 + self.settings.jitter * (2.0 * self._rng() - 1.0))

    def _move(self, target: str, host: HostHealth, state: str, reason: str | None) -> Transition | None:
        if state == host.state:
            return None
        transition = Transition(target, host.state, state, reason, host.failures)
        host.state = state
        self.transitions[(transition.before, transition.after)] += 1
        log.log(
            logging.INFO if state == "healthy" else logging.WARNING,
            "host %s: %s -> %s after %d failure(s)%s; next dial in %.0fs",
            target,
            transition.before,
            state,
            host.failures,
            f" (last: {reason})" if reason else "",
            self.wait_left(target),
        )
        return transition


# -- bastions (jump hosts) ------------------------------------------------------------------------


def is_jump_reason(reason: str | None) -> bool:
    """True for a failure of the bastion: it must not count against the hosts behind it."""
    return reason in JUMP_REASONS


@dataclass
class JumpState:
    state: str = "healthy"
    failures: int = 0
    retry_at: float = 0.0  # before this clock time, dials through the bastion fail fast with ``reason``
    reason: str | None = None


class JumpHealth:
    """The health of each bastion, apart from the hosts' (a bastion that is down would otherwise push
    every machine behind it towards dead). The failure counts pick the same states as hosts
    (``HealthSettings`` thresholds), but the wait before the next bastion dial is the jump's short
    ``retry_interval``: the bastion is the way to a whole department, so it is retried soon."""

    def __init__(self, settings: HealthSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self._clock = settings, clock
        self._jumps: dict[str, JumpState] = {}

    def get(self, jump: str) -> JumpState:
        return self._jumps.get(jump) or JumpState()

    def known(self) -> dict[str, JumpState]:
        return dict(self._jumps)

    def may_dial(self, jump: str) -> bool:
        return self._clock() >= self.get(jump).retry_at

    def record_success(self, jump: str) -> None:
        before = self.get(jump).state
        self._jumps[jump] = JumpState()
        if before != "healthy":
            log.info("bastion %s: %s -> healthy", jump, before)

    def record_failure(self, jump: str, reason: str, retry_interval: float) -> None:
        state = self._jumps.setdefault(jump, JumpState())
        state.failures += 1
        state.reason = reason
        state.retry_at = self._clock() + retry_interval
        new = HealthBook(self.settings).state_for(state.failures)
        if new != state.state:
            log.warning(
                "bastion %s: %s -> %s after %d failure(s) (last: %s); hosts behind it keep their own state",
                jump,
                state.state,
                new,
                state.failures,
                reason,
            )
        state.state = new
