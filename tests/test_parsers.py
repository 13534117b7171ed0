"""Parsers on whole batched outputs captured from three distributions, and on broken output.

tests/data/batch/<distro>.txt is what the batch script printed (or would print) on:
- debian: this machine (Debian 12, GNU coreutils), with two ``who`` sessions edited in;
- rocky: Rocky Linux 9.3 (RHEL family) with xfs, LVM, an NFS mount, GDM's seat0 session;
- alpine: Alpine 3.19 with busybox df/who on an old vendor ARM kernel (3.4: no MemAvailable),
  glued net/dev counters, a ``rootfs`` line and a mount point with an escaped space.
Expected values below are read off those files by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.command import SECTIONS, split_sections
from exporter.parsers import (
    PARSERS,
    parse_df,
    parse_filefd,
    parse_loadavg,
    parse_meminfo,
    parse_mounts,
    parse_netdev,
    parse_osrelease,
    parse_snapshot,
    parse_stat,
    parse_time,
    parse_uname,
    parse_uptime,
    parse_who,
)

DATA = Path(__file__).parent / "data" / "batch"
DISTROS = ("debian", "rocky", "alpine")


def batch(distro: str) -> dict[str, str]:
    sections, complete = split_sections((DATA / f"{distro}.txt").read_text())
    assert complete
    return sections


def test_every_section_has_a_parser():
    assert tuple(PARSERS) == tuple(name for name, _ in SECTIONS)


@pytest.mark.parametrize("distro", DISTROS)
def test_whole_capture_parses_without_errors(distro):
    snapshot, errors = parse_snapshot(batch(distro))
    assert errors == {}
    assert all(getattr(snapshot, name) is not None for name in PARSERS)
    assert snapshot.filesystems


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


def test_loadavg_uptime_time_filefd():
    rocky = batch("rocky")
    load = parse_loadavg(rocky["loadavg"])
    assert (load.load1, load.load5, load.load15) == (1.42, 0.97, 0.81)
    assert parse_uptime(rocky["uptime"]) == 244763.18
    assert parse_time(rocky["time"]) == 1795828975.0
    filefd = parse_filefd(rocky["filefd"])
    assert (filefd.allocated, filefd.maximum) == (14336, 9223372036854775807)


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


def test_mounts_unescape_and_readonly():
    mounts = {m.mountpoint: m for m in parse_mounts(batch("alpine")["mounts"])}
    assert "/media/usb stick" in mounts
    assert mounts["/boot"].readonly and not mounts["/media/usb stick"].readonly
    assert mounts["/dev/shm"].fstype == "tmpfs"


def test_busybox_df_and_inodes():
    alpine = batch("alpine")
    df = parse_df(alpine["df"])
    assert df["/"].device == "/dev/mmcblk0p2"
    assert (df["/"].total, df["/"].used, df["/"].available) == (14900152, 3317064, 10804608)
    assert df["/media/usb stick"].fstype == "vfat"
    dfi = parse_df(alpine["dfi"])
    assert (dfi["/"].total, dfi["/"].available) == (950272, 889251)
    assert dfi["/boot"].total == 0


def test_coreutils_df_with_dash_and_remote_filesystem():
    rocky = batch("rocky")
    assert parse_df(rocky["df"])["/srv/courses"].total == 1048064000
    assert parse_df(rocky["dfi"])["/run/media/alice/Rocky-9-3-x86_64-dvd"].total == 0


def test_df_device_wrapped_onto_its_own_line():
    text = (
        "Filesystem           Type       1024-blocks    Used Available Capacity Mounted on\n"
        "/dev/mapper/vg--lab-root\n"
        "                     ext4          1000        400       600  40% /\n"
    )
    row = parse_df(text)["/"]
    assert (row.device, row.total, row.available) == ("/dev/mapper/vg--lab-root", 1000, 600)


def test_filesystems_join_mounts_with_df():
    snapshot, _ = parse_snapshot(batch("alpine"))
    by_point = {(fs.device, fs.mountpoint): fs for fs in snapshot.filesystems}
    root = by_point[("/dev/mmcblk0p2", "/")]
    assert root.size_bytes == 14900152 * 1024
    assert root.free_bytes == (14900152 - 3317064) * 1024
    assert root.avail_bytes == 10804608 * 1024
    assert (root.files, root.files_free) == (950272, 889251)
    assert by_point[("rootfs", "/")].size_bytes == root.size_bytes  # statfs("/") is the same call
    assert by_point[("proc", "/proc")].size_bytes is None  # busybox df skips 0-block filesystems
    assert by_point[("/dev/mmcblk0p1", "/boot")].readonly is True


def test_bind_mount_borrows_its_device_numbers():
    snapshot, _ = parse_snapshot(batch("rocky"))
    by_point = {fs.mountpoint: fs for fs in snapshot.filesystems}
    assert by_point["/var/lib/flatpak-home"].size_bytes == by_point["/home"].size_bytes == 407714308 * 1024
    assert by_point["/run/user/1000"].size_bytes == 786928 * 1024


def test_uname_keeps_spaces_of_the_version():
    uname = parse_uname(batch("rocky")["uname"])
    assert uname.nodename == "lab-rocky-07"
    assert uname.version == "#1 SMP PREEMPT_DYNAMIC Wed Nov 8 17:36:32 UTC 2023"
    assert (uname.sysname, uname.machine, uname.domainname) == ("Linux", "x86_64", "")


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
        (parse_mounts, ""),
        (parse_df, "/dev/sda1 ext4 1 2 3 4% /\n"),
        (parse_uname, "Linux\nhost\n"),
        (parse_osrelease, 'NAME="unterminated\nID=x\n'),
        (parse_osrelease, "NAME=no-id\n"),
        (parse_time, "Sat Nov 28\n"),
        (parse_filefd, "12 0\n"),
    ],
)
def test_malformed_section_raises_value_error(parser, text):
    with pytest.raises(ValueError):
        parser(text)


def test_garbage_section_loses_only_that_section():
    sections = batch("debian")
    sections["meminfo"] = "\x00\x01 this is not meminfo\n"
    snapshot, errors = parse_snapshot(sections)
    assert list(errors) == ["meminfo"]
    assert snapshot.meminfo is None
    assert snapshot.stat is not None and snapshot.filesystems is not None and snapshot.who is not None


def test_missing_section_is_recorded_as_missing():
    sections = batch("rocky")
    del sections["loadavg"]
    snapshot, errors = parse_snapshot(sections)
    assert errors == {"loadavg": "missing from output"}
    assert snapshot.loadavg is None
    assert snapshot.uname.nodename == "lab-rocky-07"


def test_truncated_output_drops_the_cut_section_and_everything_after():
    text = (DATA / "rocky.txt").read_text()
    cut = text.index("/dev/sda1 ", text.index("@@optilab df"))
    sections, complete = split_sections(text[:cut])
    assert not complete
    snapshot, errors = parse_snapshot(sections, complete=complete)
    assert errors["df"] == "output cut short"
    assert set(errors) == {"df", "dfi", "uname", "osrelease", "time", "who", "seats"}
    assert snapshot.df is None
    assert snapshot.meminfo.bytes["MemTotal"] == 7869304 * 1024
    # mounts alone still name the filesystems; numbers are unknown rather than wrong
    root = next(fs for fs in snapshot.filesystems if fs.mountpoint == "/")
    assert root.size_bytes is None and root.readonly is False


def test_df_without_mount_table_still_gives_filesystems():
    sections = batch("rocky")
    sections["mounts"] = "garbage\n"
    snapshot, errors = parse_snapshot(sections)
    assert list(errors) == ["mounts"]
    root = next(fs for fs in snapshot.filesystems if fs.mountpoint == "/")
    assert (root.device, root.fstype, root.readonly) == ("/dev/mapper/rl-root", "xfs", None)
    assert root.files == 36700160
