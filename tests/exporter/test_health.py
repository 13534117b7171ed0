"""The health state machine and its backoff, stepped with an injected clock (hours in microseconds)."""

from __future__ import annotations

import logging

import pytest

from optilab.exporter.config import HealthSettings
from optilab.exporter.health import HealthBook


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def book(clock: Clock, jitter: float = 0.0, rng: float = 0.5, **overrides: float) -> HealthBook:
    return HealthBook(HealthSettings(jitter=jitter, **overrides), clock=clock, rng=lambda: rng)


def test_failures_walk_down_the_states_of_the_design(clock: Clock) -> None:
    health = book(clock)
    states = []
    for _ in range(8):
        health.record_failure("h:22", "timeout")
        states.append(health.get("h:22").state)
    assert states == ["degraded", "degraded", "offline", "offline", "offline", "dead", "dead", "dead"]


def test_each_state_waits_its_interval_before_the_next_dial(clock: Clock) -> None:
    health = book(clock)
    assert health.may_dial("h:22")  # healthy: every scrape dials
    health.record_failure("h:22", "refused")  # -> degraded, 10 min
    assert not health.may_dial("h:22")
    clock.now += 599
    assert not health.may_dial("h:22")
    clock.now += 1
    assert health.may_dial("h:22")
    health.record_failure("h:22", "refused")
    health.record_failure("h:22", "refused")  # third failure -> offline, 1 h
    assert health.get("h:22").state == "offline"
    assert health.wait_left("h:22") == 3600
    for _ in range(3):
        health.record_failure("h:22", "refused")
    assert health.get("h:22").state == "dead"
    assert health.wait_left("h:22") == 86400


def test_one_success_returns_to_healthy_with_no_wait(clock: Clock) -> None:
    health = book(clock)
    for _ in range(7):
        health.record_failure("h:22", "timeout")
    transition = health.record_success("h:22")
    assert transition is not None and (transition.before, transition.after) == ("dead", "healthy")
    assert health.get("h:22").failures == 0
    assert health.may_dial("h:22")


def test_transitions_are_reported_once_and_counted(clock: Clock) -> None:
    health = book(clock)
    first = health.record_failure("h:22", "auth")
    second = health.record_failure("h:22", "auth")
    assert first is not None and (first.before, first.after, first.reason) == ("healthy", "degraded", "auth")
    assert second is None  # still degraded: no transition
    health.record_failure("h:22", "auth")
    health.record_success("h:22")
    assert health.transitions == {("healthy", "degraded"): 1, ("degraded", "offline"): 1, ("offline", "healthy"): 1}


def test_jitter_spreads_retries_within_the_configured_fraction(clock: Clock) -> None:
    low, high = book(clock, jitter=0.1, rng=0.0), book(clock, jitter=0.1, rng=0.999999)
    low.record_failure("h:22", "timeout")
    high.record_failure("h:22", "timeout")
    assert low.wait_left("h:22") == pytest.approx(540)
    assert high.wait_left("h:22") == pytest.approx(660, abs=0.01)


def test_thresholds_and_intervals_are_configurable(clock: Clock) -> None:
    health = book(clock, degraded_after=2, offline_after=3, dead_after=4, degraded_interval=5)
    health.record_failure("h:22", "timeout")
    assert health.get("h:22").state == "healthy"
    assert health.may_dial("h:22")  # a healthy host never waits, even after a failure
    health.record_failure("h:22", "timeout")
    assert health.get("h:22").state == "degraded" and health.wait_left("h:22") == 5


def test_counts_include_unprobed_hosts_as_healthy_and_forget_drops_state(clock: Clock) -> None:
    health = book(clock)
    health.record_failure("a:22", "timeout")
    assert health.counts(["a:22", "b:22"]) == {"healthy": 1, "degraded": 1, "offline": 0, "dead": 0}
    health.forget_except(["b:22"])
    assert health.get("a:22").state == "healthy"


def test_transitions_are_logged(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    health = book(clock)
    with caplog.at_level(logging.INFO, logger="optilab.exporter.health"):
        health.record_failure("h:22", "hostkey")
        health.record_success("h:22")
    assert "h:22: healthy -> degraded after 1 failure(s) (last: hostkey)" in caplog.text
    assert "h:22: degraded -> healthy" in caplog.text
