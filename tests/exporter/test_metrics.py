"""Families of a probe: values from real captures, the lab gauges, golden renders, promtool's verdict.

Every test runs the real pipeline on real captures (tests/support/captures.py): the script's framed answer
is split, every collector builds its families, the probe adds the lab and probe families, and the
renderer's bytes are read back with prometheus_client's own parser — what Prometheus would see.
Parity with the real node_exporter is tests/exporter/test_parity.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from optilab.exporter.collectors import make_plan
from optilab.exporter.config import HealthSettings, HostEntry
from optilab.exporter.family import Exposition, render, render_groups
from optilab.exporter.health import HealthBook
from optilab.exporter.metrics import HostLabels, probe_families
from optilab.exporter.probe import Prober
from optilab.exporter.targets import parse_target
from tests.support.captures import answer, batch_sources
from tests.support.paths import DATA

LABELS = HostLabels(hostname="pc-07", ip="127.0.1.7", department="physics")
LAB = {"hostname": "pc-07", "ip": "127.0.1.7", "department": "physics"}
PREVIOUS_STAT = "cpu  100 0 100 700 100 0 5 5 0 0\n"


class Answers:
    """A runner that answers each probe with the next of ``answers`` (the script's framed output)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)

    def run(self, target, command, deadline) -> str:
        return self.answers.pop(0)


#: the collectors whose sources the v1 captures carry (tests/support/captures.py); no slow tier
FAST = dataclasses.replace(
    make_plan(["cpu", "stat", "meminfo", "loadavg", "netdev", "filesystem", "filefd", "uname", "os", "time", "lab"]),
    slow=None,
)


def prober(*answers: str) -> Prober:
    ticks = itertools.count()
    return Prober(
        Answers(*answers),
        HealthBook(HealthSettings()),
        clock=lambda: 0.0,
        timer=lambda: next(ticks) * 0.0001,
        plans=lambda entry: FAST,
    )


def probe(sources: dict[str, str], previous_stat: str | None = None, labels: HostLabels = LABELS) -> list:
    """One probe's families for ``sources``; with ``previous_stat``, a first probe read that /proc/stat."""
    answers = [answer(sources, FAST)]
    if previous_stat is not None:
        answers.insert(0, answer({**sources, "/proc/stat": previous_stat}, FAST))
    runner = prober(*answers)
    entry = HostEntry(parse_target(labels.ip, 22), labels.department, labels.hostname)
    if previous_stat is not None:
        runner.probe(entry, 1e9)
    return runner.probe(entry, 1e9).families


def exposed(families, extra=None) -> dict[str, object]:
    """Render, then read back with prometheus_client's own parser: tests see what Prometheus would."""
    return {family.name: family for family in text_string_to_metric_families(render(families, extra or {}).decode())}


def values(parsed: dict, name: str) -> dict[tuple, float]:
    """``{sorted label items: value}`` of one family (counter families are named without ``_total``)."""
    family = parsed[name]
    return {tuple(sorted(sample.labels.items())): sample.value for sample in family.samples}


def families_of(distro: str, previous: str | None = None) -> dict[str, object]:
    return exposed(probe(batch_sources(distro), previous))


def test_memory_bytes_and_counts_keep_kernel_casing():
    parsed = families_of("rocky")
    assert values(parsed, "node_memory_MemTotal_bytes") == {(): 7869304 * 1024}
    assert values(parsed, "node_memory_Active_anon_bytes") == {(): 85412 * 1024}
    assert values(parsed, "node_memory_HugePages_Total") == {(): 0}
    assert parsed["node_memory_MemTotal_bytes"].type == "gauge"


def test_cpu_seconds_counters_per_cpu_and_mode():
    parsed = families_of("rocky")
    cpu = values(parsed, "node_cpu_seconds")
    assert parsed["node_cpu_seconds"].type == "counter"
    assert len(cpu) == 4 * 8
    assert cpu[(("cpu", "2"), ("mode", "user"))] == pytest.approx(1902.33)
    assert cpu[(("cpu", "0"), ("mode", "softirq"))] == pytest.approx(62.10)
    guest = values(parsed, "node_cpu_guest_seconds")
    assert set(guest) == {(("cpu", c), ("mode", m)) for c in "0123" for m in ("user", "nice")}


def test_filesystem_default_exclusions_keep_tmpfs():
    parsed = families_of("rocky")
    size = values(parsed, "node_filesystem_size_bytes")
    assert {dict(key)["mountpoint"] for key in size} == {
        "/",
        "/boot",
        "/home",
        "/var/lib/flatpak-home",
        "/srv/courses",
        "/run",
        "/run/user/1000",
    }  # not /dev/shm (mount point), /run/credentials/.. (mount point), the DVD (iso9660), rpc_pipefs
    root = (("device", "/dev/mapper/rl-root"), ("fstype", "xfs"), ("mountpoint", "/"))
    assert size[root] == 73364480 * 1024
    assert values(parsed, "node_filesystem_free_bytes")[root] == (73364480 - 21387744) * 1024
    assert values(parsed, "node_filesystem_avail_bytes")[root] == 51976736 * 1024
    assert values(parsed, "node_filesystem_files_free")[root] == 36287327
    readonly = values(parsed, "node_filesystem_readonly")
    assert (
        readonly[(("device", "fileserver.lab:/export/courses"), ("fstype", "nfs4"), ("mountpoint", "/srv/courses"))]
        == 1
    )
    assert readonly[root] == 0


def test_filesystems_of_busybox_host():
    parsed = families_of("alpine")
    size = values(parsed, "node_filesystem_size_bytes")
    assert {(dict(key)["device"], dict(key)["mountpoint"]) for key in size} == {
        ("rootfs", "/"),
        ("/dev/mmcblk0p2", "/"),
        ("tmpfs", "/run"),
        ("/dev/mmcblk0p1", "/boot"),
        ("/dev/sda1", "/media/usb stick"),
    }


def test_network_counters_include_loopback():
    parsed = families_of("rocky")
    received = values(parsed, "node_network_receive_bytes")
    assert received[(("device", "ens192"),)] == 48123399812
    assert (("device", "lo"),) in received
    assert values(parsed, "node_network_transmit_colls")[(("device", "virbr0"),)] == 0
    assert parsed["node_network_receive_drop"].type == "counter"


def test_stat_load_time_filefd_families():
    parsed = families_of("rocky")
    assert values(parsed, "node_boot_time_seconds") == {(): 1795584212}
    assert values(parsed, "node_context_switches") == {(): 187323399}
    assert values(parsed, "node_intr") == {(): 98234511}
    assert values(parsed, "node_forks") == {(): 412889}
    assert values(parsed, "node_procs_running") == {(): 3}
    assert values(parsed, "node_load5") == {(): 0.97}
    assert values(parsed, "node_time_seconds") == {(): 1795828975}
    assert values(parsed, "node_filefd_maximum") == {(): float(9223372036854775807)}  # float64, as in node_exporter


def test_uname_and_os_info():
    parsed = families_of("alpine")
    [(uname, one)] = values(parsed, "node_uname_info").items()
    assert one == 1
    assert dict(uname) == {
        "sysname": "Linux",
        "nodename": "thin-12",
        "release": "3.4.113-sun8i",
        "version": "#1 SMP PREEMPT Wed Jan 24 19:56:21 CET 2018",
        "machine": "armv7l",
        "domainname": "(none)",  # the kernel's default, as node_exporter reports it
    }
    [(os_info, _)] = values(parsed, "node_os_info").items()
    assert dict(os_info)["pretty_name"] == "Alpine Linux v3.19" and dict(os_info)["id_like"] == ""
    assert values(parsed, "node_os_version") == {(("id", "alpine"), ("id_like", ""), ("name", "Alpine Linux")): 3.19}
    rocky = families_of("rocky")
    assert list(values(rocky, "node_os_version").values()) == [9.3]


def test_collector_success_and_duration_per_collector():
    sources = batch_sources("debian")
    del sources["/proc/meminfo"]
    sources["/proc/loadavg"] = "garbage\n"
    parsed = families_of_sources(sources)
    success = {dict(key)["collector"]: value for key, value in values(parsed, "node_scrape_collector_success").items()}
    assert success == {
        "cpu": 1,
        "stat": 1,
        "meminfo": 0,
        "loadavg": 0,
        "netdev": 1,
        "filesystem": 1,
        "filefd": 1,
        "uname": 1,
        "os": 1,
        "time": 1,
        "lab": 1,
    }
    durations = values(parsed, "node_scrape_collector_duration_seconds")
    assert len(durations) == len(success) and all(v == pytest.approx(0.0001) for v in durations.values())
    assert "node_memory_MemTotal_bytes" not in parsed and "node_load1" not in parsed
    assert "node_cpu_seconds" in parsed


def families_of_sources(sources, previous=None):
    return exposed(probe(sources, previous))


def cpu_usage(previous: str | None, current: str) -> list:
    sources = {**batch_sources("debian"), "/proc/stat": current}
    return [f for f in probe(sources, previous) if f.name == "system_cpu_usage"]


def test_cpu_usage_from_counter_deltas():
    # deltas in jiffies: user 60, system 20, idle 200, iowait 20, softirq 10, steal 10 -> busy 100 of 320
    [family] = cpu_usage("cpu  100 0 100 700 100 0 5 5 0 0\n", "cpu  160 0 120 900 120 0 15 15 0 0\n")
    [(labels, value)] = family.samples
    assert value == pytest.approx(100 * 100 / 320)
    assert dict(zip(family.labels, labels, strict=True)) == LAB


def test_cpu_usage_absent_on_first_scrape_and_after_reboot():
    assert cpu_usage(None, "cpu  30 0 20 400 1 0 0 0 0 0\n") == []
    assert cpu_usage("cpu  5000 0 900 90000 100 0 0 0 0 0\n", "cpu  30 0 20 400 1 0 0 0 0 0\n") == []


def test_ram_usage_with_and_without_memavailable():
    debian = values(families_of("debian"), "system_ram_usage")
    assert debian == {tuple(sorted(LAB.items())): pytest.approx(100 * (24684092 - 24051856) / 24684092)}
    alpine = values(families_of("alpine"), "system_ram_usage")  # kernel 3.4: MemFree + Buffers + Cached
    assert list(alpine.values()) == [pytest.approx(100 * (1011656 - 511224 - 38120 - 301228) / 1011656)]


def test_disk_usage_of_root_as_df_computes_it():
    debian = values(families_of("debian"), "system_disk_usage")  # ext4 reserve: size > used + avail
    assert list(debian.values()) == [pytest.approx(100 * 23865116 / (23865116 + 82525796))]
    rocky = values(families_of("rocky"), "system_disk_usage")
    assert list(rocky.values()) == [pytest.approx(100 * 21387744 / 73364480)]


def test_logged_in_users():
    assert list(values(families_of("rocky"), "optilab_logged_in_users").values()) == [3]
    assert list(values(families_of("alpine"), "optilab_logged_in_users").values()) == [0]


def test_lab_gauges_absent_when_their_source_failed():
    sources = batch_sources("debian")
    for key in ("/proc/meminfo", "cmd:statfs", "cmd:who"):
        del sources[key]
    names = {f.name for f in probe(sources, PREVIOUS_STAT)}
    assert "system_cpu_usage" in names
    assert not names & {
        "system_ram_usage",
        "system_disk_usage",
        "optilab_logged_in_users",
        "node_memory_MemTotal_bytes",
    }


def test_probe_families_on_success_and_failure():
    ok = exposed(probe_families(LABELS, True, 0.25, "healthy", None))
    assert values(ok, "optilab_probe_success") == {(): 1}
    assert values(ok, "optilab_probe_duration_seconds") == {(): 0.25}
    assert values(ok, "system_status") == {tuple(sorted(LAB.items())): 1}
    assert "optilab_probe_error_info" not in ok
    failed = exposed(probe_families(LABELS, False, 5.0, "degraded", "timeout"))
    assert values(failed, "optilab_probe_success") == {(): 0}
    assert values(failed, "system_status") == {tuple(sorted(LAB.items())): 0}
    assert values(failed, "optilab_host_health_state") == {
        (("state", "healthy"),): 0,
        (("state", "degraded"),): 1,
        (("state", "offline"),): 0,
        (("state", "dead"),): 0,
    }
    assert values(failed, "optilab_probe_error_info") == {(("reason", "timeout"),): 1}
    with pytest.raises(ValueError, match="unknown health state"):
        probe_families(LABELS, False, 0.0, "sleepy", "timeout")


def test_series_cap_keeps_whole_families_and_says_how_many_were_dropped(caplog):
    runner = prober(answer(batch_sources("rocky"), FAST), answer(batch_sources("rocky"), FAST))
    runner.series_cap = 50
    entry = HostEntry(parse_target("127.0.1.7", 22), "physics")
    families = runner.probe(entry, 1e9).families
    parsed = exposed(families)
    node = [f for f in families if f.name.startswith("node_") and not f.name.startswith("node_scrape")]
    assert sum(len(f.samples) for f in node) <= 50
    assert values(parsed, "optilab_probe_series_dropped")[()] > 0
    assert values(parsed, "optilab_probe_success") == {(): 1}
    runner.probe(entry, 1e9)
    assert runner.series_cap_hits == 2
    assert sum("exceed the cap" in record.message for record in caplog.records) == 1  # logged once per host


def test_extra_labels_reach_every_sample_and_render_merges_hosts():
    families = probe(batch_sources("rocky"))
    text = render_groups(
        [
            (families, {"instance": "127.0.1.7:22", "department": "physics"}),
            (families, {"instance": "127.0.1.8:22", "department": "chemistry"}),
        ]
    ).decode()
    assert text.count("# TYPE node_load1 gauge") == 1
    assert 'node_load1{instance="127.0.1.8:22",department="chemistry"} 1.42' in text
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    lab = values(parsed, "system_ram_usage")
    assert {dict(key)["department"] for key in lab} == {"physics"}  # the host's own label is not doubled
    assert all(s.labels["instance"] for f in parsed.values() for s in f.samples)
    assert all("instance" not in s.labels for f in exposed(families).values() for s in f.samples)


def test_chunks_are_the_rendering_in_bounded_pieces_cut_between_names():
    """A fan-out's body is handed to the server in pieces: joined, they are the one rendering; each
    piece ends where a metric name's lines end, and holds about ``size`` bytes."""
    groups = [
        (probe(batch_sources(distro)), {"instance": f"127.0.1.{i}:22"})
        for i, distro in enumerate(["rocky", "debian"] * 20)
    ]
    whole = render_groups(groups)
    exposition = Exposition()
    for families, extra in groups:
        exposition.add(families, extra)
    pieces = exposition.chunks(size=16 * 1024)
    assert b"".join(pieces) == whole and len(pieces) > 10
    largest_name = max(len(text) for text in whole.split(b"# HELP ")) + len(b"# HELP ")
    assert all(len(piece) < 16 * 1024 + largest_name for piece in pieces)
    assert all(piece.startswith(b"# HELP ") and piece.endswith(b"\n") for piece in pieces)
    assert exposition.chunks() == []  # it renders once


RENDERED = DATA / "render"
#: The hosts of the golden files: distro of the captured batch, hostname, address, department.
GOLDEN_HOSTS = [
    ("rocky", "pc-07", "127.0.1.7", "physics"),
    ("debian", "pc-08", "127.0.1.8", "chemistry"),
    ("alpine", "pc-09", "127.0.1.9", "chemistry"),
]


def golden_host(distro: str, hostname: str, ip: str, department: str) -> list:
    """One probe's families as the golden files were made: rocky and debian succeed (CPU percent from a
    fixed previous read, no ``who``), alpine failed with a timeout."""
    labels = HostLabels(hostname, ip, department)
    if distro == "alpine":
        return probe_families(labels, False, 5.0, "degraded", "timeout")
    sources = batch_sources(distro)
    del sources["cmd:who"]
    return probe(sources, PREVIOUS_STAT, labels)


def samples_of(text: str) -> list[tuple]:
    return [
        (family.name, family.type, family.documentation, sample.name, sorted(sample.labels.items()), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


@pytest.mark.parametrize("host", GOLDEN_HOSTS, ids=[host[0] for host in GOLDEN_HOSTS])
def test_single_target_output_is_unchanged(host):
    """tests/data/render/*.prom: the exact bytes of a probe of each capture; any change must be seen."""
    golden = (RENDERED / f"single-{host[0]}.prom").read_text()
    text = render(golden_host(*host)).decode()
    assert samples_of(text) == samples_of(golden)
    assert len(samples_of(text)) == {"rocky": 241, "debian": 200, "alpine": 8}[host[0]]
    assert text == golden


def test_fan_out_output_is_unchanged():
    groups = [(golden_host(*host), {"instance": f"{host[2]}:22", "department": host[3]}) for host in GOLDEN_HOSTS]
    golden = (RENDERED / "fanout.prom").read_text()
    text = render_groups(groups).decode()
    assert samples_of(text) == samples_of(golden)
    assert {dict(labels)["instance"] for *_, labels, _ in samples_of(text)} == {
        "127.0.1.7:22",
        "127.0.1.8:22",
        "127.0.1.9:22",
    }
    assert text == golden


def camel_case_names(text: str) -> set[str]:
    """What promtool's lint calls camelCase: a lower-case letter followed by an upper-case one."""
    return {f.name for f in text_string_to_metric_families(text) if re.search("[a-z][A-Z]", f.name)}


@pytest.mark.parametrize("distro", ["debian", "rocky", "alpine"])
def test_promtool_finds_nothing_but_node_exporters_camel_case(distro):
    families = probe(batch_sources(distro), "cpu  1 0 1 1 0 0 0 0 0 0\n")
    families += probe_families(LABELS, False, 1.5, "offline", "refused")[-1:]
    text = render(families).decode()
    result = subprocess.run(
        ["/usr/bin/promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    flagged = {line.split()[0] for line in complaints}
    assert all(line.endswith("metric names should be written in 'snake_case' not 'camelCase'") for line in complaints)
    assert flagged == camel_case_names(text)
    assert flagged and all(name.startswith("node_memory_") for name in flagged)
