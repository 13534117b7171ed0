"""The slow tier (exporter/slowtier.py) and its systemd collector; labsim's /sys and systemctl."""

from __future__ import annotations

import time

import gevent
import pytest
from prometheus_client.parser import text_string_to_metric_families

from optilab.exporter.collectors import by_name, make_plan
from optilab.exporter.collectors import systemd as sd
from optilab.exporter.command import frame
from optilab.exporter.family import render
from optilab.exporter.slowtier import SlowTier
from optilab.exporter.targets import Target
from tests.support import paths

DATA = paths.DATA / "slow" / "debian12"
TARGET = Target("127.0.1.5", 22)


def capture() -> dict[str, str]:
    return {
        sd.UNITS: (DATA / "list-units.txt").read_text(),
        sd.SHOW: (DATA / "show.txt").read_text(),
        sd.STATE: (DATA / "is-system-running.txt").read_text(),
        sd.VERSION: (DATA / "version.txt").read_text(),
    }


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
    assert names == {
        "cron.service",
        "cups.service",
        "ssh.service",
        "apt-daily.service",
        "systemd-fsck-root.service",
        "cups.socket",
        "apt-daily.timer",
        "e2scrub_all.timer",
    }
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


def slow_plan():
    plan = make_plan(["systemd"]).slow
    assert plan is not None and plan.names == ("systemd",)
    return plan


def test_cache_interval_age_and_failure():
    clock, runner = Clock(), FakeRunner(capture())
    tier = SlowTier(runner, interval=60, clock=clock, spawn=lambda fn, *args: fn(*args))
    plan = slow_plan()
    first = tier.cached(TARGET, plan)  # this spawn refreshes synchronously
    assert runner.calls == 1 and first is not None and first[0] == 1000.0
    assert first[1][sd.UNITS] == capture()[sd.UNITS]
    clock.now += 30
    assert tier.cached(TARGET, plan) == first and runner.calls == 1  # not due: served from cache
    runner.fail = True
    clock.now += 31
    assert tier.cached(TARGET, plan) == first and runner.calls == 2  # failed refresh: last answer kept
    assert tier.refreshes == {"success": 1, "failure": 1}
    clock.now += 300  # past max_age (five intervals): nothing is served any more
    assert tier.cached(TARGET, plan) is None
    tier.forget_except(set())
    assert tier.cached(TARGET, plan) is None and runner.calls == 4


def test_a_slow_refresh_never_slows_the_scrape():
    runner = FakeRunner(capture(), delay=0.5)
    tier = SlowTier(runner, interval=60)
    plan = slow_plan()
    started = time.monotonic()
    assert tier.cached(TARGET, plan) is None  # nothing cached yet; the refresh runs in its own greenlet
    assert tier.cached(TARGET, plan) is None  # one refresh per host at a time
    assert time.monotonic() - started < 0.1
    gevent.sleep(0.7)
    assert runner.calls == 1 and tier.cached(TARGET, plan) is not None


def test_probe_waits_only_for_a_hosts_first_refresh():
    from optilab.exporter.config import HealthSettings, HostEntry
    from optilab.exporter.health import HealthBook
    from optilab.exporter.probe import Prober

    class Both:
        """The fast script gets a minimal Linux answer; the slow one systemctl's, after 0.3 s."""

        def __init__(self) -> None:
            self.calls: list[str] = []

        def run(self, target: Target, command: str, deadline: float) -> str:
            if "systemctl" in command:
                self.calls.append("slow")
                gevent.sleep(0.3)
                return frame(capture(), [name for name, _ in sd.COMMANDS])
            self.calls.append("fast")
            return frame({"/proc/loadavg": "0.10 0.20 0.30 1/100 1234\n"}, [])

    runner = Both()
    prober = Prober(
        runner, HealthBook(HealthSettings()), plans=lambda entry: make_plan(["loadavg", "systemd"]), slow_interval=0.5
    )
    entry = HostEntry(TARGET, "physics", None)
    first = render(prober.probe(entry, time.monotonic() + 5).families).decode()
    assert 'node_scrape_collector_success{collector="systemd"} 1' in first  # the first scrape waited for it
    assert 'node_systemd_unit_state{name="ssh.service",state="active",type="notify"} 1' in first
    gevent.sleep(0.6)  # the cache is due again
    started = time.monotonic()
    second = render(prober.probe(entry, time.monotonic() + 5).families).decode()
    assert time.monotonic() - started < 0.2  # the refresh runs in its own greenlet; the scrape did not wait
    assert 'node_scrape_collector_success{collector="systemd"} 1' in second  # served from the cache
    age = next(
        line
        for line in second.splitlines()
        if line.startswith('optilab_scrape_collector_cache_age_seconds{collector="systemd"}')
    )
    assert float(age.rsplit(" ", 1)[1]) >= 0.5
    gevent.sleep(0.4)
    assert runner.calls.count("slow") == 2
    no_time = render(
        Prober(Both(), HealthBook(HealthSettings()), plans=lambda entry: make_plan(["loadavg", "systemd"]))
        .probe(entry, time.monotonic() + 0.1)
        .families
    ).decode()
    assert 'collector="systemd"' not in no_time  # no second to spare: no wait, not reported until it has run


def test_labsim_answers_the_slow_script_and_shows_sys():
    from optilab.labsim.model import HostState, make_profiles
    from optilab.labsim.shell import respond

    now = time.time()
    debian = next(p for p in make_profiles(4, 2) if not p.busybox)
    state = HostState.boot(debian, now)
    plan = slow_plan()
    sources, complete = plan.split(respond(plan.script, state, now).stdout.decode())
    assert complete
    collector = by_name()["systemd"]
    got = samples(collector.collect(sources, collector.options()))
    assert got[("node_systemd_unit_state", ("name", "ssh.service"), ("state", "active"), ("type", "notify"))] == 1
    fast = make_plan(["netclass", "cpufreq", "hwmon", "thermal_zone"])
    sources, complete = fast.split(respond(fast.script, state, now).stdout.decode())
    assert complete
    families = []
    for collector, options in fast.collectors:
        built = collector.collect(sources, options)
        assert built, collector.name
        families += built
    shown = samples(families)
    assert shown[("node_network_up", ("device", debian.nic))] == 1
    assert shown[("node_network_speed_bytes", ("device", debian.nic))] == 125_000_000
    assert ("node_hwmon_temp_celsius", ("chip", "platform_coretemp_0"), ("sensor", "temp1")) in shown
    assert any(k[0] == "node_cpu_scaling_frequency_hertz" for k in shown)
    assert any(k[0] == "node_thermal_zone_temp" for k in shown)
    alpine = next(p for p in make_profiles(4, 2) if p.busybox)
    answer = respond(plan.script, HostState.boot(alpine, now), now).stdout.decode()
    assert collector.collect(plan.split(answer)[0], collector.options()) == []  # no systemd


def test_nvidia_gpu_from_nvidia_smi_csv():
    from optilab.exporter.collectors import nvidia_gpu

    collector = by_name()["nvidia_gpu"]
    text = (paths.DATA / "slow" / "gpu" / "nvidia-smi-query.csv").read_text()
    got = samples(collector.collect({nvidia_gpu.SOURCE: text}, collector.options()))
    gpu = ("uuid", "4c2b7c2e-4a1e-93d3-1f0b-6e8a1f5c3d21")
    assert got[("nvidia_smi_temperature_gpu", gpu)] == 41
    assert got[("nvidia_smi_utilization_gpu_ratio", gpu)] == pytest.approx(0.03)
    assert got[("nvidia_smi_memory_used_bytes", gpu)] == 642 * 1048576
    assert got[("nvidia_smi_power_draw_watts", gpu)] == pytest.approx(17.52)
    assert got[("nvidia_smi_clocks_current_graphics_clock_hz", gpu)] == 210e6
    assert got[("nvidia_smi_pstate", gpu)] == 8
    assert ("nvidia_smi_encoder_stats_session_count", gpu) in got
    t400 = ("uuid", "9a0d11f3-0be7-2c55-8d4e-51a7c6b0e9f0")
    assert ("nvidia_smi_power_draw_watts", t400) not in got  # [Not Supported]: no sample
    assert ("nvidia_smi_temperature_memory", t400) not in got  # N/A
    info = [k for k in got if k[0] == "nvidia_smi_gpu_info"]
    assert len(info) == 2 and any(("name", "NVIDIA T400 4GB") in key for key in info)
    assert collector.collect({}, collector.options()) == []  # no nvidia-smi
    with pytest.raises(ValueError):  # driver not loaded: nvidia-smi prints an error instead of the CSV
        collector.collect(
            {nvidia_gpu.SOURCE: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"},
            collector.options(),
        )
    assert "nvidia-smi --query-gpu=" in nvidia_gpu.COMMAND and collector.tier == "slow"


def test_smartctl_json_with_smartctl_exporters_names():
    from optilab.exporter.collectors import smartctl

    collector = by_name()["smartctl"]
    text = (paths.DATA / "slow" / "smart" / "smartctl.json").read_text()
    got = samples(collector.collect({smartctl.SOURCE: text}, collector.options()))
    sda = (
        ("device", "/dev/sda"),
        ("model_family", "Samsung based SSDs"),
        ("model_name", "Samsung SSD 870 EVO 500GB"),
        ("serial_number", "S62ANJ0R123456X"),
    )
    status = {dict(k[1:])["device"]: v for k, v in got.items() if k[0] == "smartctl_device_smartctl_exit_status"}
    assert status == {"/dev/sda": 0, "/dev/nvme0n1": 0, "/dev/sdb": 2}  # sda: the sudo -n retry answered
    assert got[("smartctl_device_smart_status", *sda)] == 1
    # a counter without _total, as smartctl_exporter names it; prometheus_client's parser appends _total
    assert got[("smartctl_device_power_on_seconds_total", *sda)] == 7431 * 3600
    assert got[("smartctl_device_temperature", *sorted((*sda, ("temperature_type", "current"))))] == 33
    realloc = [
        v
        for k, v in got.items()
        if k[0] == "smartctl_device_attribute"
        and ("attribute_name", "Reallocated_Sector_Ct") in k
        and ("attribute_value_type", "thresh") in k
    ]
    assert realloc == [10]
    flags = {dict(k[1:])["attribute_flags_long"] for k in got if k[0] == "smartctl_device_attribute"}
    assert "prefailure,updated_online,event_count,auto_keep" in flags
    nvme = [v for k, v in got.items() if k[0] == "smartctl_device_percentage_used_total"]
    assert nvme == [2]
    assert not any(("device", "/dev/sdb") in k for k in got if k[0] != "smartctl_device_smartctl_exit_status")
    assert collector.collect({smartctl.SOURCE: ""}, collector.options()) == []  # no disks, or no smartctl
    with pytest.raises(ValueError):
        collector.collect({smartctl.SOURCE: "smartctl: command not found\n"}, collector.options())
