"""Metric families: values computed from the captured batches, promtool's verdict, and node_exporter parity.

The parity tests run the real node_exporter (Debian's prometheus-node-exporter) on this machine and
the batch script locally — what an SSH target would run — and compare names, types, label names and
values that cannot drift between the two reads.
"""

from __future__ import annotations

import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.command import BATCH_SCRIPT, SECTIONS, split_sections
from exporter.metrics import (
    HostLabels,
    probe_families,
    render,
    snapshot_families,
)
from exporter.parsers import HostSnapshot, parse_snapshot, parse_stat
from tests.fixtures.procs import Service, free_port, http_ok

DATA = Path(__file__).parent / "data" / "batch"
LABELS = HostLabels(hostname="pc-07", ip="127.0.1.7", department="physics")
LAB = {"hostname": "pc-07", "ip": "127.0.1.7", "department": "physics"}


def snapshot_of(distro: str) -> tuple[HostSnapshot, dict[str, str]]:
    sections, _ = split_sections((DATA / f"{distro}.txt").read_text())
    return parse_snapshot(sections)


def exposed(families) -> dict[str, object]:
    """Render, then read back with prometheus_client's own parser: tests see what Prometheus would."""
    return {family.name: family for family in text_string_to_metric_families(render(families).decode())}


def values(parsed: dict, name: str) -> dict[tuple, float]:
    """``{sorted label items: value}`` of one family (counter families are named without ``_total``)."""
    family = parsed[name]
    return {tuple(sorted(sample.labels.items())): sample.value for sample in family.samples}


def families_of(distro: str, previous: HostSnapshot | None = None) -> dict[str, object]:
    snapshot, errors = snapshot_of(distro)
    return exposed(snapshot_families(snapshot, previous, LABELS, errors))


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
        readonly[
            (("device", "fileserver.lab:/export/courses"), ("fstype", "nfs4"), ("mountpoint", "/srv/courses"))
        ]
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
    assert values(parsed, "node_filefd_maximum") == {
        (): float(9223372036854775807)
    }  # float64, as in node_exporter


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
        "domainname": "",
    }
    [(os_info, _)] = values(parsed, "node_os_info").items()
    assert dict(os_info)["pretty_name"] == "Alpine Linux v3.19" and dict(os_info)["id_like"] == ""
    assert values(parsed, "node_os_version") == {
        (("id", "alpine"), ("id_like", ""), ("name", "Alpine Linux")): 3.19
    }
    rocky = families_of("rocky")
    assert list(values(rocky, "node_os_version").values()) == [9.3]


def test_collector_success_per_section():
    snapshot, errors = snapshot_of("debian")
    errors = {**errors, "who": "broken"}
    parsed = exposed(snapshot_families(snapshot, None, LABELS, errors))
    success = {
        dict(key)["collector"]: value
        for key, value in values(parsed, "node_scrape_collector_success").items()
    }
    assert success == {name: (0.0 if name == "who" else 1.0) for name, _ in SECTIONS}


def two_snapshots(before: str, after: str) -> tuple[HostSnapshot, HostSnapshot]:
    return HostSnapshot(stat=parse_stat(before)), HostSnapshot(stat=parse_stat(after))


def cpu_usage(previous: HostSnapshot | None, current: HostSnapshot) -> dict:
    families = snapshot_families(current, previous, LABELS, {})
    return [f for f in families if f.name == "system_cpu_usage"]


def test_cpu_usage_from_counter_deltas():
    # deltas in jiffies: user 60, system 20, idle 200, iowait 20, softirq 10, steal 10 -> busy 100 of 320
    previous, current = two_snapshots(
        "cpu  100 0 100 700 100 0 5 5 0 0\n", "cpu  160 0 120 900 120 0 15 15 0 0\n"
    )
    [family] = cpu_usage(previous, current)
    [sample] = family.samples
    assert sample.value == pytest.approx(100 * 100 / 320)
    assert sample.labels == LAB


def test_cpu_usage_absent_on_first_scrape_and_after_reboot():
    previous, current = two_snapshots(
        "cpu  5000 0 900 90000 100 0 0 0 0 0\n", "cpu  30 0 20 400 1 0 0 0 0 0\n"
    )
    assert cpu_usage(None, current) == []
    assert cpu_usage(previous, current) == []


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


def test_lab_gauges_absent_when_their_section_failed():
    snapshot, _ = snapshot_of("debian")
    broken = HostSnapshot(stat=snapshot.stat, uname=snapshot.uname)
    previous = HostSnapshot(stat=parse_stat("cpu  1 0 1 1 0 0 0 0 0 0\n"))
    names = {f.name for f in snapshot_families(broken, previous, LABELS, {"meminfo": "x"})}
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


def test_extra_labels_reach_every_sample_and_render_merges_hosts():
    snapshot, errors = snapshot_of("rocky")
    physics = HostLabels(hostname="pc-07", ip="127.0.1.7", department="physics")
    first = snapshot_families(snapshot, None, physics, errors, {"instance": "127.0.1.7:22", "department": "physics"})
    second = snapshot_families(snapshot, None, physics, errors,
                               {"instance": "127.0.1.8:22", "department": "chemistry"})
    text = render(first + second).decode()
    assert text.count("# TYPE node_load1 gauge") == 1
    assert 'node_load1{department="chemistry",instance="127.0.1.8:22"} 1.42' in text
    lab = values(exposed(first + second), "system_ram_usage")
    assert {dict(key)["department"] for key in lab} == {"physics", "chemistry"}  # extra labels win
    assert all(s.labels["instance"] for f in first for s in f.samples)
    assert all("instance" not in s.labels for f in snapshot_families(snapshot, None, physics, errors)
               for s in f.samples)


RENDERED = Path(__file__).parent / "data" / "render"
#: The hosts of the golden files: distro of the captured batch, hostname, address, department.
GOLDEN_HOSTS = [("rocky", "pc-07", "127.0.1.7", "physics"), ("debian", "pc-08", "127.0.1.8", "chemistry"),
                ("alpine", "pc-09", "127.0.1.9", "chemistry")]


def golden_host(distro: str, hostname: str, ip: str, department: str, extra: dict[str, str]) -> list:
    """One probe's families as the golden files were made: rocky and debian succeed (CPU percent from a
    fixed previous read, a broken ``who`` section), alpine failed with a timeout."""
    labels = HostLabels(hostname, ip, department)
    if distro == "alpine":
        return probe_families(labels, False, 5.0, "degraded", "timeout", extra)
    snapshot, errors = snapshot_of(distro)
    previous = HostSnapshot(stat=parse_stat("cpu  100 0 100 700 100 0 5 5 0 0\n"))
    return [*snapshot_families(snapshot, previous, labels, {**errors, "who": "broken"}, extra),
            *probe_families(labels, True, 0.25, "healthy", None, extra)]


def samples_of(text: str) -> list[tuple]:
    return [(family.name, family.type, family.documentation, sample.name, sorted(sample.labels.items()),
             sample.value) for family in text_string_to_metric_families(text) for sample in family.samples]


@pytest.mark.parametrize("host", GOLDEN_HOSTS, ids=[host[0] for host in GOLDEN_HOSTS])
def test_single_target_output_is_unchanged(host):
    """tests/data/render/*.prom were rendered by the code before labels were built in (it copied every
    sample to add them); the output must stay the same, sample for sample and byte for byte."""
    golden = (RENDERED / f"single-{host[0]}.prom").read_text()
    text = render(golden_host(*host, {})).decode()
    assert samples_of(text) == samples_of(golden)
    assert len(samples_of(text)) == {"rocky": 226, "debian": 190, "alpine": 8}[host[0]]
    assert text == golden


def test_fan_out_output_is_unchanged():
    families = []
    for host in GOLDEN_HOSTS:
        families += golden_host(*host, {"instance": f"{host[2]}:22", "department": host[3]})
    golden = (RENDERED / "fanout.prom").read_text()
    text = render(families).decode()
    assert samples_of(text) == samples_of(golden)
    assert {dict(labels)["instance"] for *_, labels, _ in samples_of(text)} == {
        "127.0.1.7:22", "127.0.1.8:22", "127.0.1.9:22"}
    assert text == golden


def camel_case_names(text: str) -> set[str]:
    """What promtool's lint calls camelCase: a lower-case letter followed by an upper-case one."""
    return {f.name for f in text_string_to_metric_families(text) if re.search("[a-z][A-Z]", f.name)}


@pytest.mark.parametrize("distro", ["debian", "rocky", "alpine"])
def test_promtool_finds_nothing_but_node_exporters_camel_case(distro):
    snapshot, errors = snapshot_of(distro)
    previous = HostSnapshot(stat=parse_stat("cpu  1 0 1 1 0 0 0 0 0 0\n"))
    families = snapshot_families(snapshot, previous, LABELS, errors)
    families += probe_families(LABELS, False, 1.5, "offline", "refused")
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
    assert all(
        line.endswith("metric names should be written in 'snake_case' not 'camelCase'") for line in complaints
    )
    assert flagged == camel_case_names(text)
    assert flagged and all(name.startswith("node_memory_") for name in flagged)


# --- parity with the real node_exporter on this machine ---------------------------------------------

NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")
COVERED = re.compile(
    r"^node_(cpu|memory|filesystem|load|network_(receive|transmit)_(bytes|packets|errs|drop|fifo|"
    r"frame|compressed|multicast|colls|carrier)|boot_time|context_switches|intr|forks|procs_"
    r"(running|blocked)|uname|os|time_seconds|filefd)"
)


@pytest.fixture(scope="module")
def node_exporter_metrics(tmp_path_factory) -> dict[str, object]:
    if not NODE_EXPORTER.exists():
        pytest.skip("prometheus-node-exporter is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("node_exporter") / "node_exporter.log"
    service = Service([str(NODE_EXPORTER), f"--web.listen-address=127.0.0.1:{port}"], log)
    try:
        service.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/metrics"), timeout=20)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        service.stop()
    return {family.name: family for family in text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def our_metrics() -> dict[str, object]:
    """This machine read exactly as an SSH target would be: the batch script run by ``sh``."""
    output = subprocess.run(
        ["sh", "-c", BATCH_SCRIPT], capture_output=True, text=True, timeout=30, check=True
    )
    sections, complete = split_sections(output.stdout)
    assert complete
    snapshot, errors = parse_snapshot(sections)
    assert errors == {}
    return exposed(snapshot_families(snapshot, None, LABELS, errors))


def test_same_names_types_and_label_names_as_node_exporter(our_metrics, node_exporter_metrics):
    ours = {name: family for name, family in our_metrics.items() if COVERED.match(name)}
    missing = set(ours) - set(node_exporter_metrics)
    assert not missing, f"families node_exporter does not have: {sorted(missing)}"
    assert {
        "node_cpu_seconds",
        "node_memory_MemTotal_bytes",
        "node_filesystem_size_bytes",
        "node_load1",
        "node_network_receive_bytes",
        "node_boot_time_seconds",
        "node_uname_info",
        "node_os_info",
        "node_time_seconds",
        "node_filefd_allocated",
        "node_context_switches",
    } <= set(ours)
    for name, family in ours.items():
        theirs = node_exporter_metrics[name]
        assert family.type == theirs.type, name
        our_labels = {frozenset(sample.labels) for sample in family.samples}
        their_labels = {frozenset(sample.labels) for sample in theirs.samples}
        assert our_labels == their_labels, name


def test_values_that_cannot_drift_match_node_exporter(our_metrics, node_exporter_metrics):
    assert values(our_metrics, "node_memory_MemTotal_bytes") == values(
        node_exporter_metrics, "node_memory_MemTotal_bytes"
    )
    ours, theirs = values(our_metrics, "node_uname_info"), values(node_exporter_metrics, "node_uname_info")
    [our_uname], [their_uname] = [dict(k) for k in ours], [dict(k) for k in theirs]
    for label in ("sysname", "nodename", "release", "version", "machine"):
        assert our_uname[label] == their_uname[label]
    assert values(our_metrics, "node_os_info") == values(node_exporter_metrics, "node_os_info")
    their_sizes = values(node_exporter_metrics, "node_filesystem_size_bytes")
    our_sizes = values(our_metrics, "node_filesystem_size_bytes")
    root = next(key for key in their_sizes if dict(key)["mountpoint"] == "/")
    assert our_sizes[root] == their_sizes[root]
    assert (
        values(our_metrics, "node_filesystem_files")[root]
        == values(node_exporter_metrics, "node_filesystem_files")[root]
    )
