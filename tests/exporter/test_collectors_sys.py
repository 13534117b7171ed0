"""The /sys collectors (col-sys): each one against real node_exporter 1.5 reading the same files.

Two kinds of capture: this machine's own /sys and /proc (read live by the very script a probe
sends, run here by ``sh``), and ``tests/data/sys/lab-pc``, a hand-made tree for hardware this
machine lacks (hwmon chips, thermal zones, a battery, RAPL, DMI, EDAC, NVMe, a bond, md arrays),
written in the kernel's documented formats. node_exporter reads the hand-made tree through
``--path.sysfs``/``--path.procfs``; the probe's script reads it with every ``/sys/`` and ``/proc/``
of the script pointed at the tree. Both answers are compared family by family: names, types, HELP,
label sets and values. Directories the kernel leaves empty (a device with no attributes read, btrfs's
``features``) hold a ``.keep`` file in the capture: git keeps no empty folder, and without them
node_exporter sees a different tree on a fresh clone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from optilab.exporter.collectors import by_name
from optilab.exporter.command import build_script, command_names, split_sources
from optilab.exporter.family import render
from tests.support import paths
from tests.support.node_exporter import needs_node_exporter, scrape_once

DATA = paths.DATA / "sys"
LAB_PC = DATA / "lab-pc"
#: the collectors whose output is compared with node_exporter's (selinux asks libselinux about the
#: real machine, so it is compared on the live machine only).
SYS = [
    "bonding",
    "btrfs",
    "cpufreq",
    "dmi",
    "edac",
    "fibrechannel",
    "hwmon",
    "infiniband",
    "ipvs",
    "mdadm",
    "netclass",
    "nfs",
    "nfsd",
    "nvme",
    "powersupplyclass",
    "rapl",
    "tapestats",
    "thermal_zone",
    "xfs",
    "zfs",
]


def read_sources(names: list[str], root: Path | None = None) -> dict[str, str]:
    """What a probe's script returns for ``names``, run by ``sh`` on this machine (``root``: a capture)."""
    collectors = [by_name()[name] for name in names]
    script = build_script(collectors)
    if root is not None:
        script = script.replace("/sys/", f"{root}/sys/").replace("/proc/", f"{root}/proc/")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, cwd="/").stdout
    if root is not None:
        out = out.replace(str(root), "")
    sources, complete = split_sources(out, command_names(collectors))
    assert complete
    return sources


def ours(names: list[str], root: Path | None = None) -> str:
    sources = read_sources(names, root)
    families = []
    for name in names:
        collector = by_name()[name]
        families += collector.collect(sources, collector.options())
    return render(families).decode()


def theirs(names: list[str], root: Path | None = None) -> str:
    flags = ["--collector.disable-defaults", *(f"--collector.{name}" for name in names)]
    if root is None:
        return scrape_once(*flags)
    text = scrape_once(*flags, f"--path.sysfs={root}/sys", f"--path.procfs={root}/proc")
    return text.replace(str(root), "")  # rapl's path


def families(text: str) -> dict[str, tuple[str, str, dict[frozenset, float]]]:
    """``{family name: (type, HELP, {label set: value})}``, node_exporter's own families left out."""
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith(("go_", "process_", "promhttp_", "node_exporter_", "node_scrape_")):
            continue
        samples = {frozenset(s.labels.items()) | {("__name__", s.name)}: s.value for s in family.samples}
        out[family.name] = (family.type, family.documentation, samples)
    return out


def assert_same(mine: str, upstream: str) -> None:
    a, b = families(mine), families(upstream)
    assert sorted(a) == sorted(b)
    for name in b:
        assert a[name][:2] == b[name][:2], name
        assert a[name][2].keys() == b[name][2].keys(), name
        for labels, value in b[name][2].items():
            assert a[name][2][labels] == pytest.approx(value, rel=1e-9), (name, labels)


@needs_node_exporter
def test_lab_pc_capture_matches_node_exporter():
    mine = ours(SYS, LAB_PC)
    assert_same(mine, theirs(SYS, LAB_PC))
    # the capture really exercises every collector
    names = families(mine)
    for expected in (
        "node_hwmon_temp_celsius",
        "node_hwmon_chip_names",
        "node_hwmon_sensor_label",
        "node_hwmon_fan_rpm",
        "node_hwmon_in_volts",
        "node_thermal_zone_temp",
        "node_cooling_device_max_state",
        "node_power_supply_info",
        "node_rapl_package_joules",
        "node_dmi_info",
        "node_edac_correctable_errors",
        "node_nvme_info",
        "node_bonding_active",
        "node_md_state",
        "node_network_speed_bytes",
        "node_cpu_scaling_frequency_hertz",
        "node_xfs_read_calls",
        "node_nfs_requests",
        "node_nfsd_requests",
        "node_ipvs_backend_weight",
        "node_infiniband_port_data_received_bytes",
        "node_tape_io_now",
        "node_fibrechannel_info",
        "node_zfs_arc_hits",
        "node_zfs_zpool_state",
        "node_zfs_zpool_dataset_writes",
        "node_btrfs_allocation_ratio",
    ):
        assert expected in names, expected


@needs_node_exporter
def test_this_machine_matches_node_exporter():
    names = [*SYS, "selinux"]
    assert_same(ours(names), theirs(names))


def test_lab_pc_values_from_the_kernel_formats():
    fams = families(ours(SYS, LAB_PC))
    temp = fams["node_hwmon_temp_celsius"][2]
    key = frozenset({("__name__", "node_hwmon_temp_celsius"), ("chip", "platform_coretemp_0"), ("sensor", "temp1")})
    assert temp[key] == 45.0  # temp1_input is millidegrees
    md = fams["node_md_blocks_synced"][2]
    assert md[frozenset({("__name__", "node_md_blocks_synced"), ("device", "md0")})] == 83136960
    state = fams["node_md_state"][2]
    assert state[frozenset({("__name__", "node_md_state"), ("device", "md0"), ("state", "resync")})] == 1
    bond = fams["node_bonding_active"][2]
    assert bond[frozenset({("__name__", "node_bonding_active"), ("master", "bond0")})] == 1
    speed = fams["node_network_speed_bytes"][2]
    assert speed[frozenset({("__name__", "node_network_speed_bytes"), ("device", "eno1")})] == 125_000_000


def test_collectors_with_nothing_cost_nothing():
    """An empty tree: no families, and the script starts no process for them (only head and sh's builtins)."""
    empty = DATA / "empty"
    assert ours(SYS, empty) == ""
    script = build_script([by_name()[name] for name in SYS])
    assert script.count("head ") == 1 and "$(" not in script and "`" not in script


def test_ignored_devices_flag():
    collector = by_name()["netclass"]
    sources = read_sources(["netclass"], LAB_PC)
    kept = render(collector.collect(sources, collector.options({"ignored-devices": "^eno"}))).decode()
    assert 'device="bond0"' in kept and 'device="eno1"' not in kept
    invalid = render(collector.collect(sources, collector.options({"ignore-invalid-speed": "true"}))).decode()
    assert 'node_network_speed_bytes{device="eno2"}' not in invalid


def test_mdstat_parser_rejects_garbage():
    from optilab.exporter.collectors import mdadm

    with pytest.raises(ValueError):
        mdadm.parse("md0 : active raid1 sda1[0]\n      garbage\n\n\n")
    assert mdadm.parse("Personalities : \nunused devices: <none>\n") == []


def test_large_values_render_as_go_does():
    """node_exporter prints 3.3e+09 (Go's shortest 'g'); the renderer once printed 33e+09 (ten times
    too large) for a CPU frequency: caught by the comparison above (fixed on h/col-core too)."""
    from optilab.exporter.family import format_value

    assert format_value(3.3e9) == "3.3e+09"
    assert float(format_value(-1.5e10)) == -1.5e10
    assert format_value(1234567.0) == "1.234567e+06"
    assert float(format_value(12345678901.25)) == 12345678901.25


def test_values_render_as_prometheus_clients_go_formatting_across_magnitudes():
    """format_value's shortcut for integer-valued counters (the integer's digits, not repr's) gives
    what prometheus_client's floatToGoString gives, from 1e6 up to 2**53 and past it."""
    import random

    from prometheus_client.utils import floatToGoString

    from optilab.exporter.family import format_value

    chosen = random.Random(12)
    values = [1e6, 1e15, 2.0**53 - 1, 2.0**53, 2.0**53 + 2, 1e16, 1e21, 1e22, -1e6, -2.5e9, 0.0, -0.0, 5e-7]
    for power in range(0, 24):
        for _ in range(300):
            whole = float(chosen.randint(10**power, 10 ** (power + 1)))
            values += [whole, whole + chosen.random(), -whole, whole * 1000]
    values += [float("inf"), float("-inf"), float("nan")]
    assert [format_value(v) for v in values] == [floatToGoString(v) for v in values]


def test_selinux_from_the_files_libselinux_reads():
    from optilab.exporter.collectors import selinux

    filesystems = (LAB_PC / "proc" / "filesystems").read_text()  # this machine's: no selinuxfs
    assert selinux.parse({selinux.FILESYSTEMS: filesystems}) == (False, None, None)
    with_selinux = filesystems + "nodev\tselinuxfs\n"
    config = "# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n"
    sources = {selinux.FILESYSTEMS: with_selinux, selinux.ENFORCE: "0", selinux.CONFIG: config}
    assert selinux.parse(sources) == (True, 0, 1)  # permissive now, enforcing configured
    assert selinux.parse({**sources, selinux.CONFIG: "SELINUX=disabled\n"})[2] == -1
    assert selinux.parse({}) is None and selinux.collect({}, by_name()["selinux"].options()) == []
    with pytest.raises(ValueError):
        selinux.parse({selinux.FILESYSTEMS: "~garbage\n"})
