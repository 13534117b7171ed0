"""The slow tier (exporter/slowtier.py) and its systemd collector; labsim's /sys and systemctl."""

from __future__ import annotations

import time
from pathlib import Path

import gevent
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors import COLLECTORS, by_name
from exporter.collectors import systemd as sd
from exporter.command import frame
from exporter.config import Target
from exporter.family import render
from exporter.slowtier import SlowTier, slow_collectors, to_client

DATA = Path(__file__).parent / "data" / "slow" / "debian12"
TARGET = Target("127.0.1.5", 22)


def capture() -> dict[str, str]:
    return {sd.UNITS: (DATA / "list-units.txt").read_text(), sd.SHOW: (DATA / "show.txt").read_text(),
            sd.STATE: (DATA / "is-system-running.txt").read_text(), sd.VERSION: (DATA / "version.txt").read_text()}


def samples(families) -> dict[tuple, float]:
    text = render(families).decode()
    out = {}
    for family in text_string_to_metric_families(text):  # the exposition parses
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def test_systemd_from_systemctl_capture():
    collector = by_name()["systemd"]
    got = samples(collector.collect(capture(), collector.options()))
    state = "node_systemd_unit_state"
    assert got[(state, ("name", "ssh.service"), ("state", "active"), ("type", "notify"))] == 1
    assert got[(state, ("name", "cups.service"), ("state", "failed"), ("type", "notify"))] == 1
    assert got[(state, ("name", "cups.service"), ("state", "active"), ("type", "notify"))] == 0
    assert got[(state, ("name", "apt-daily.timer"), ("state", "active"), ("type", ""))] == 1
    names = {dict(key[1:])["name"] for key in got if key[0] == state}
    # upstream's default exclude (automount, device, mount, scope, slice) and only loaded units
    assert names == {"cron.service", "cups.service", "ssh.service", "apt-daily.service", "systemd-fsck-root.service",
                     "cups.socket", "apt-daily.timer", "e2scrub_all.timer"}
    # the summary counts every unit listed, loaded or not
    assert got[("node_systemd_units", ("state", "active"))] == 11
    assert got[("node_systemd_units", ("state", "inactive"))] == 2
    assert got[("node_systemd_units", ("state", "failed"))] == 1
    assert got[("node_systemd_units", ("state", "activating"))] == 1
    assert got[("node_systemd_system_running",)] == 0  # degraded
    assert got[("node_systemd_version", ("version", "252.38-1~deb12u1"))] == 252.38
    assert got[("node_systemd_timer_last_trigger_seconds", ("name", "apt-daily.timer"))] == 1764570000
    assert got[("node_systemd_timer_last_trigger_seconds", ("name", "e2scrub_all.timer"))] == 0
    assert got[("node_systemd_socket_accepted_connections_total", ("name", "cups.socket"))] == 17
    assert got[("node_systemd_socket_refused_connections_total", ("name", "cups.socket"))] == 2


def test_systemd_filters_and_absence():
    collector = by_name()["systemd"]
    only_ssh = collector.options({"unit-include": "ssh\\.service", "unit-exclude": ""})
    got = samples(collector.collect(capture(), only_ssh))
    assert {dict(k[1:])["name"] for k in got if k[0] == "node_systemd_unit_state"} == {"ssh.service"}
    assert collector.collect({}, collector.options()) == []  # no systemctl: nothing, no failure
    with pytest.raises(ValueError):  # systemctl there but no systemd running it
        collector.collect({sd.UNITS: ""}, collector.options())


class FakeRunner:
    def __init__(self, sources: dict[str, str], delay: float = 0.0) -> None:
        self.sources, self.delay, self.calls, self.fail = sources, delay, 0, False

    def run(self, target: Target, command: str, deadline: float) -> str:
        self.calls += 1
        if self.delay:
            gevent.sleep(self.delay)
        if self.fail:
            raise OSError("connection reset")
        return frame(self.sources, [name for name, _ in sd.COMMANDS])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_interval_age_and_failure():
    clock, runner = Clock(), FakeRunner(capture())
    tier = SlowTier(runner, slow_collectors(COLLECTORS), interval=60, clock=clock,
                    spawn=lambda fn, *args: fn(*args))
    first = samples(tier.after_scrape(TARGET))  # refreshed synchronously by this spawn
    assert runner.calls == 1
    assert first[("node_scrape_collector_success", ("collector", "systemd"))] == 1
    assert first[("optilab_collector_cache_age_seconds", ("collector", "systemd"))] == 0
    clock.now += 30
    again = samples(tier.after_scrape(TARGET))
    assert runner.calls == 1  # not due yet: served from cache
    assert again[("optilab_collector_cache_age_seconds", ("collector", "systemd"))] == 30
    assert ("node_systemd_system_running",) in again
    runner.fail = True
    clock.now += 31
    stale = samples(tier.after_scrape(TARGET))
    assert runner.calls == 2
    assert stale[("node_scrape_collector_success", ("collector", "systemd"))] == 0
    assert stale[("optilab_collector_cache_age_seconds", ("collector", "systemd"))] == 61
    assert ("node_systemd_system_running",) in stale  # last good families still served
    clock.now += 300  # past max_age (5 intervals): the stale families are dropped
    dropped = samples(tier.after_scrape(TARGET))
    assert ("node_systemd_system_running",) not in dropped
    assert dropped[("node_scrape_collector_success", ("collector", "systemd"))] == 0


def test_a_slow_refresh_never_slows_the_scrape():
    runner = FakeRunner(capture(), delay=0.5)
    tier = SlowTier(runner, slow_collectors(COLLECTORS), interval=60)
    started = time.monotonic()
    assert tier.after_scrape(TARGET) == []  # nothing cached yet; the refresh runs in its greenlet
    assert tier.after_scrape(TARGET) == []  # one refresh per host at a time
    assert time.monotonic() - started < 0.1
    gevent.sleep(0.7)
    assert runner.calls == 1
    assert ("node_systemd_system_running",) in samples(tier.after_scrape(TARGET))


def test_to_client_keeps_names_and_extra_labels():
    tier = SlowTier(FakeRunner(capture()), slow_collectors(COLLECTORS), spawn=lambda fn, *a: fn(*a))
    metrics = to_client(tier.after_scrape(TARGET), {"instance": "127.0.1.5:22"})
    from exporter.metrics import render as client_render
    text = client_render(metrics).decode()
    line = 'node_systemd_unit_state{instance="127.0.1.5:22",name="ssh.service",state="active",type="notify"} 1.0'
    assert line in text
    assert "node_systemd_socket_accepted_connections_total{" in text


def test_labsim_answers_the_slow_script_and_shows_sys():
    from labsim.model import HostState, make_profiles
    from labsim.render_sys import HWMON_LINKS, render_sys
    from labsim.shell import SLOW_SCRIPT, respond

    now = time.time()
    profiles = make_profiles(4, 2)
    debian = next(p for p in profiles if not p.busybox)
    state = HostState.boot(debian, now)

    class LabRunner:
        def run(self, target: Target, command: str, deadline: float) -> str:
            return respond(command, state, now).stdout.decode()

    tier = SlowTier(LabRunner(), slow_collectors(COLLECTORS), spawn=lambda fn, *a: fn(*a))
    got = samples(tier.after_scrape(TARGET))
    assert got[("node_scrape_collector_success", ("collector", "systemd"))] == 1
    assert any(k[0] == "node_systemd_unit_state" for k in got)
    assert SLOW_SCRIPT == tier.script
    sources = {**render_sys(state, now), "cmd:hwmon_links": HWMON_LINKS}
    families = []
    for name in ("netclass", "cpufreq", "hwmon", "thermal_zone"):
        collector = by_name()[name]
        built = collector.collect(sources, collector.options())
        assert built, name
        families += built
    shown = samples(families)
    assert shown[("node_network_up", ("device", debian.nic))] == 1
    assert shown[("node_network_speed_bytes", ("device", debian.nic))] == 125_000_000
    assert ("node_hwmon_temp_celsius", ("chip", "platform_coretemp_0"), ("sensor", "temp1")) in shown
    assert any(k[0] == "node_cpu_scaling_frequency_hertz" for k in shown)
    assert any(k[0] == "node_thermal_zone_temp" for k in shown)
