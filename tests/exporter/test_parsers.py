"""Pure parsers, on real captures (tests/support/captures.py): /proc text, mount tables, stat -f, who, os-release.

Each parser takes the text of one source and returns plain data or raises ``ValueError``; a collector
that gets the error reports ``node_scrape_collector_success 0`` and every other collector still runs.
"""

from __future__ import annotations

import pytest

from optilab.exporter.collectors.filesystem import parse_mounts, parse_statfs, statfs_tried
from optilab.exporter.collectors.time import parse_clock, parse_date
from optilab.exporter.parsers_host import parse_osrelease, parse_who
from optilab.exporter.parsers_proc import parse_filefd, parse_loadavg, parse_meminfo, parse_netdev, parse_stat
from tests.support.captures import batch_sources

DISTROS = ("debian", "rocky", "alpine")
PATHS = {
    "meminfo": "/proc/meminfo",
    "stat": "/proc/stat",
    "loadavg": "/proc/loadavg",
    "filefd": "/proc/sys/fs/file-nr",
    "netdev": "/proc/net/dev",
    "mounts": "/proc/1/mounts",
    "osrelease": "/etc/os-release",
    "who": "cmd:who",
    "time": "cmd:date",
    "statfs": "cmd:statfs",
}


def batch(distro: str) -> dict[str, str]:
    """The capture's sources by their v1 section names."""
    sources = batch_sources(distro)
    return {name: sources[path] for name, path in PATHS.items()}


@pytest.mark.parametrize(
    ("distro", "mem_total_kb", "mem_available_kb", "hugepages"),
    [
        ("debian", 24684092, 24051856, True),
        ("rocky", 7869304, 5123044, True),
        ("alpine", 1011656, None, False),
    ],
)
def test_meminfo_is_in_bytes_with_counts_apart(distro, mem_total_kb, mem_available_kb, hugepages):
    meminfo = parse_meminfo(batch(distro)["meminfo"])
    assert meminfo.bytes["MemTotal"] == mem_total_kb * 1024
    assert meminfo.bytes.get("MemAvailable") == (mem_available_kb * 1024 if mem_available_kb else None)
    assert meminfo.bytes["Active(anon)"] > 0
    assert ("HugePages_Total" in meminfo.counts) is hugepages
    assert "HugePages_Total" not in meminfo.bytes


def test_cpu_seconds_are_jiffies_over_user_hz():
    stat = parse_stat(batch("rocky")["stat"])
    assert sorted(stat.cpus) == ["0", "1", "2", "3"]
    assert stat.cpus["0"].user == pytest.approx(1834.22)
    assert stat.cpus["3"].idle == pytest.approx(48390.04)
    assert stat.total.user == pytest.approx(7225.74)
    assert stat.total.steal == 0.0
    assert (stat.boot_time, stat.context_switches, stat.interrupts) == (1795584212, 187323399, 98234511)
    assert (stat.forks, stat.procs_running, stat.procs_blocked) == (412889, 3, 1)


def test_old_kernel_stat_without_steal_and_guest_columns():
    stat = parse_stat("cpu  10 20 30 40 50 60 70\ncpu0 10 20 30 40 50 60 70\nbtime 1000\n")
    assert stat.total.softirq == pytest.approx(0.7)
    assert (stat.total.steal, stat.total.guest, stat.total.guest_nice) == (0.0, 0.0, 0.0)
    assert stat.boot_time == 1000
    assert stat.context_switches is None


def test_loadavg_time_filefd():
    rocky = batch("rocky")
    load = parse_loadavg(rocky["loadavg"])
    assert (load.load1, load.load5, load.load15) == (1.42, 0.97, 0.81)
    assert parse_date(rocky["time"]) == (1795828975.0, 0, "UTC")
    filefd = parse_filefd(rocky["filefd"])
    assert (filefd.allocated, filefd.maximum) == (14336, 9223372036854775807)


def test_date_with_nanoseconds_zone_and_without_percent_n():
    assert parse_date("1796164173.630619302 +0130 ACST\n") == (1796164173.630619302, 5400, "ACST")
    assert parse_date("1796164173.%N -0500 EST\n") == (1796164173.0, -18000, "EST")  # busybox date
    assert parse_date("1796164173.N +0000 UTC\n")[0] == 1796164173.0


def test_clock_is_the_kept_date_plus_the_uptime_since():
    assert parse_clock("1796164173.5 +0130 ACST 4000.00\n4015.25\n") == (1796164188.75, 5400, "ACST")
    assert parse_clock("1796164173.5 +0000 UTC\n") == (1796164173.5, 0, "UTC")  # date itself (no uptime)
    with pytest.raises(ValueError, match="uptime went"):  # a reboot would have ended the shell
        parse_clock("1796164173.5 +0000 UTC 4000.00\n3999.00\n")
    with pytest.raises(ValueError, match="bad uptimes"):
        parse_clock("1796164173.5 +0000 UTC 4000.00\nnope\n")


def test_netdev_columns_come_from_the_header():
    devices = parse_netdev(batch("rocky")["netdev"])
    assert list(devices) == ["lo", "ens192", "virbr0"]
    assert devices["ens192"]["receive_bytes"] == 48123399812
    assert devices["ens192"]["receive_drop"] == 10231
    assert devices["ens192"]["receive_multicast"] == 388120
    assert devices["ens192"]["transmit_packets"] == 18223001
    assert len(devices["lo"]) == 16


def test_netdev_counter_glued_to_the_device_name():
    devices = parse_netdev(batch("alpine")["netdev"])
    assert devices["eth0"]["receive_bytes"] == 1833920133
    assert devices["eth0"]["transmit_bytes"] == 88312042


def test_mounts_keep_options_and_unescape_spaces_like_node_exporter():
    mounts = {m.mountpoint: m for m in parse_mounts(batch("alpine")["mounts"])}
    assert "/media/usb stick" in mounts
    assert "ro" in mounts["/boot"].options.split(",")
    assert mounts["/dev/shm"].fstype == "tmpfs"
    [mount] = parse_mounts("/dev/sdb1 /mnt/a\\011tab\\134x ext4 rw 0 0\n")
    assert mount.mountpoint == "/mnt/a\ttab\\134x"  # node_exporter unescapes only \040 and \011


def test_statfs_lines_keep_spaces_in_the_mount_point():
    stats = parse_statfs("100 40 30 4096 1000 900 /\n7 6 5 1024 0 0 /media/usb stick\n")
    assert (stats["/"].blocks, stats["/"].free, stats["/"].avail, stats["/"].bsize) == (100, 40, 30, 4096)
    assert (stats["/media/usb stick"].files, stats["/media/usb stick"].files_free) == (0, 0)
    assert parse_statfs("") == {}


def test_statfs_names_the_mount_points_it_tried():
    text = "? /\n? /media/usb stick\n? /gone\n100 40 30 4096 1000 900 /\n7 6 5 1024 0 0 /media/usb stick\n"
    assert set(parse_statfs(text)) == {"/", "/media/usb stick"}  # the ? lines are not stat's
    assert statfs_tried(text) == {"/", "/media/usb stick", "/gone"}
    assert statfs_tried("100 40 30 4096 1000 900 /\n") is None  # a simulator's answer: every mount tried


def test_osrelease_unquotes_values():
    rocky = parse_osrelease(batch("rocky")["osrelease"])
    assert (rocky["ID"], rocky["ID_LIKE"], rocky["VERSION_ID"]) == ("rocky", "rhel centos fedora", "9.3")
    alpine = parse_osrelease(batch("alpine")["osrelease"])
    assert (alpine["ID"], alpine["VERSION_ID"], alpine["PRETTY_NAME"]) == (
        "alpine",
        "3.19.1",
        "Alpine Linux v3.19",
    )
    debian = parse_osrelease(batch("debian")["osrelease"])
    assert debian["VERSION_CODENAME"] == "bookworm"


@pytest.mark.parametrize(
    ("distro", "sessions"),
    [
        ("debian", [("student", "tty7", ":0"), ("admin", "pts/1", "127.0.0.1")]),
        (
            "rocky",
            [("alice", "seat0", "login screen"), ("alice", "tty2", "tty2"), ("bob", "pts/0", "ws-17.lab")],
        ),
        ("alpine", []),
    ],
)
def test_who_sessions(distro, sessions):
    assert [(s.user, s.tty, s.host) for s in parse_who(batch(distro)["who"])] == sessions


def test_busybox_who_with_header():
    text = "USER\t\tTTY\t\tIDLE\tTIME\t\t HOST\nlab\t\tpts/0\t\t00:00\tNov 28 01:02:03\t 127.0.0.1\n"
    assert [(s.user, s.tty) for s in parse_who(text)] == [("lab", "pts/0")]


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (parse_stat, "intr 1 2 3\n"),
        (parse_meminfo, "MemFree: 12 kB\n"),
        (parse_meminfo, "MemTotal: 12 MB\n"),
        (parse_loadavg, "0.1\n"),
        (parse_netdev, "lo: 1 2 3\n"),
        (parse_mounts, "/dev/sda1 /\n"),
        (parse_statfs, "1 2 3 /\n"),
        (parse_statfs, "a b c d e f /\n"),
        (parse_osrelease, 'NAME="unterminated\nID=x\n'),
        (parse_osrelease, "NAME=no-id\n"),
        (parse_date, "Sat Nov 28\n"),
        (parse_date, "1796164173 0100 CET\n"),
        (parse_filefd, "12 0\n"),
    ],
)
def test_malformed_source_raises_value_error(parser, text):
    with pytest.raises(ValueError):
        parser(text)
