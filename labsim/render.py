"""Render a simulated host's state in the exact text formats of the files and tools the probe reads.

The exporter's parsers only ever see what a real machine prints, so the simulator prints the same:
kernel column layouts of /proc, GNU ``df`` (or busybox's on Alpine) with its computed column widths,
``who`` lines, os-release quoting. Each renderer is a pure function of (state, simulated time).
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable

from optilab.exporter.command import END, PIPED, START, frame
from optilab.exporter.parsers_seat import SESSION_DIR, SESSION_FILES
from optilab.labsim.model import KIB, USER_HZ, HostState, Session
from optilab.labsim.render_sys import sys_sources

VERSIONS = {"debian": "12 (bookworm)", "ubuntu": "24.04.1 LTS (Noble Numbat)", "rocky": "9.4 (Blue Onyx)"}
MOUNT_OPTIONS = {"ext4": "rw,relatime", "xfs": "rw,relatime,attr2,inode64,logbufs=8,noquota"}


def render_stat(state: HostState, now: float) -> str:
    cpus = [[int(v) for v in cpu] for cpu in state.cpu]
    total = [sum(column) for column in zip(*cpus, strict=True)]
    lines = ["cpu  " + " ".join(str(v) for v in total) + " 0 0"]
    lines += [f"cpu{i} " + " ".join(str(v) for v in cpu) + " 0 0" for i, cpu in enumerate(cpus)]
    interrupts = int(state.ctxt * 0.6)
    lines += [
        f"intr {interrupts} 0 9 0 0 0 0 0 0 0 1 0 0 0 0 0 0",
        f"ctxt {int(state.ctxt)}",
        f"btime {int(state.boot_time)}",
        f"processes {int(state.processes) + 1}",
        f"procs_running {1 + int(state.utilisation * state.profile.cpus)}",
        "procs_blocked 0",
        f"softirq {int(state.ctxt * 0.2)} 0 {int(state.ctxt * 0.05)} 4 {int(state.ctxt * 0.01)} 0 0 2 0 0 0",
    ]
    return "\n".join(lines) + "\n"


def _memory(state: HostState) -> dict[str, int]:
    total = state.profile.mem_kib
    used = int(total * state.mem_used_fraction)
    cached = int((total - used) * 0.45)
    buffers = int(total * 0.01)
    free = max(0, total - used - cached - buffers)
    return {
        "MemTotal": total,
        "MemFree": free,
        "MemAvailable": free + int(cached * 0.9) + buffers,
        "Buffers": buffers,
        "Cached": cached,
        "used": used,
    }


def render_meminfo(state: HostState, now: float) -> str:
    mem = _memory(state)
    used, cached = mem["used"], mem["Cached"]
    swap = 2 * KIB * KIB if not state.profile.busybox else 0
    fields: list[tuple[str, int]] = [
        ("MemTotal", mem["MemTotal"]),
        ("MemFree", mem["MemFree"]),
        ("MemAvailable", mem["MemAvailable"]),
        ("Buffers", mem["Buffers"]),
        ("Cached", cached),
        ("SwapCached", 0),
        ("Active", int(used * 0.6 + cached * 0.4)),
        ("Inactive", int(used * 0.3 + cached * 0.6)),
        ("Active(anon)", int(used * 0.55)),
        ("Inactive(anon)", int(used * 0.25)),
        ("Active(file)", int(cached * 0.4)),
        ("Inactive(file)", int(cached * 0.6)),
        ("Unevictable", 18188),
        ("Mlocked", 17260),
        ("SwapTotal", swap),
        ("SwapFree", swap),
        ("Dirty", 236),
        ("Writeback", 0),
        ("AnonPages", int(used * 0.8)),
        ("Mapped", int(cached * 0.2)),
        ("Shmem", int(used * 0.05)),
        ("KReclaimable", int(used * 0.06)),
        ("Slab", int(used * 0.08)),
        ("SReclaimable", int(used * 0.06)),
        ("SUnreclaim", int(used * 0.02)),
        ("KernelStack", 12364),
        ("PageTables", int(used * 0.01)),
        ("NFS_Unstable", 0),
        ("Bounce", 0),
        ("WritebackTmp", 0),
        ("CommitLimit", mem["MemTotal"] // 2 + swap),
        ("Committed_AS", int(used * 1.4)),
        ("VmallocTotal", 34359738367),
        ("VmallocUsed", 45180),
        ("VmallocChunk", 0),
        ("Percpu", 6880),
        ("AnonHugePages", 0),
        ("ShmemHugePages", 0),
        ("ShmemPmdMapped", 0),
    ]
    lines = [f"{name + ':':<16}{value:>8} kB" for name, value in fields]
    lines += [
        f"{name + ':':<16}{0:>8}" for name in ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp")
    ]
    lines += ["Hugepagesize:       2048 kB", "Hugetlb:               0 kB"]
    return "\n".join(lines) + "\n"


def render_loadavg(state: HostState, now: float) -> str:
    load = state.utilisation * state.profile.cpus
    running = 1 + int(state.utilisation * state.profile.cpus)
    return (
        f"{load:.2f} {load * 0.93:.2f} {load * 0.85:.2f} {running}/{300 + int(load * 40)} {int(state.processes) + 1}\n"
    )


def render_uptime(state: HostState, now: float) -> str:
    uptime = state.uptime(now)
    idle = sum(cpu[3] for cpu in state.cpu) / USER_HZ
    return f"{uptime:.2f} {idle:.2f}\n"


def render_netdev(state: HostState, now: float) -> str:
    lo = int(state.uptime(now) * 900)
    rows = [
        ("lo", lo, lo // 90, lo, lo // 90),
        (state.profile.nic, int(state.rx_bytes), int(state.rx_packets), int(state.tx_bytes), int(state.tx_packets)),
    ]
    lines = [
        "Inter-|   Receive                                                |  Transmit",
        " face |bytes    packets errs drop fifo frame compressed multicast|"
        "bytes    packets errs drop fifo colls carrier compressed",
    ]
    for name, rxb, rxp, txb, txp in rows:
        lines.append(
            f"{name:>6}:{rxb:>8} {rxp:>7} {0:>4} {0:>4} {0:>4} {0:>5} {0:>10} {0:>9} "
            f"{txb:>8} {txp:>7} {0:>4} {0:>4} {0:>4} {0:>5} {0:>7} {0:>10}"
        )
    return "\n".join(lines) + "\n"


def _filesystems(state: HostState) -> list[tuple[str, str, str, int, int, int, int]]:
    """(device, fstype, mountpoint, size KiB, used KiB, inodes, inodes used) for df and mounts."""
    rows = []
    for disk in state.profile.disks:
        fraction = state.root_used_fraction if disk.mountpoint == "/" else 0.35
        used = int(disk.size_kib * fraction)
        rows.append(
            (
                disk.device,
                disk.fstype,
                disk.mountpoint,
                disk.size_kib,
                used,
                disk.inodes,
                int(disk.inodes * fraction * 0.3),
            )
        )
    mem = state.profile.mem_kib
    rows.append(("tmpfs", "tmpfs", "/run", mem // 10, 1800, mem // 4, 900))
    rows.append(("tmpfs", "tmpfs", "/dev/shm", mem // 2, 0, mem // 4, 1))  # noqa: S108 - a mount name
    return rows


def render_mounts(state: HostState, now: float) -> str:
    lines = [
        "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
        "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0",
        f"devtmpfs /dev devtmpfs rw,nosuid,relatime,size={state.profile.mem_kib // 2}k,mode=755 0 0",
        "devpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000 0 0",
    ]
    for device, fstype, mountpoint, size, *_ in _filesystems(state):
        options = MOUNT_OPTIONS.get(fstype, f"rw,nosuid,nodev,size={size}k,mode=755")
        lines.append(f"{device} {mountpoint} {fstype} {options} 0 0")
    lines.append("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0")
    return "\n".join(lines) + "\n"


def render_filefd(state: HostState, now: float) -> str:
    return f"{2000 + int(state.utilisation * 6000)}\t0\t9223372036854775807\n"


def render_uname(state: HostState, now: float) -> str:
    distro = state.profile.distro
    return f"Linux\n{state.profile.hostname}\n{distro[6]}\n{distro[7]}\nx86_64\n"


def render_osrelease(state: HostState, now: float) -> str:
    os_id, version_id, name, pretty, codename, id_like, *_ = state.profile.distro
    lines = [f'PRETTY_NAME="{pretty}"', f'NAME="{name}"', f'VERSION_ID="{version_id}"']
    if os_id == "alpine":
        lines = [
            f'NAME="{name}"',
            f"ID={os_id}",
            f"VERSION_ID={version_id}",
            f'PRETTY_NAME="{pretty}"',
            'HOME_URL="https://alpinelinux.org/"',
            'BUG_REPORT_URL="https://gitlab.alpinelinux.org/"',
        ]
        return "\n".join(lines) + "\n"
    lines.append(f'VERSION="{VERSIONS[os_id]}"')
    if codename:
        lines.append(f"VERSION_CODENAME={codename}")
    lines.append(f"ID={os_id}")
    if id_like:
        lines.append(f'ID_LIKE="{id_like}"' if " " in id_like else f"ID_LIKE={id_like}")
    lines.append(f'HOME_URL="https://www.{os_id}.org/"')
    return "\n".join(lines) + "\n"


def render_who(state: HostState, now: float) -> str:
    lines = []
    for session in state.sessions:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(session.login))
        lines.append(f"{session.user:<8} {session.tty:<12} {stamp} (:0)")
    return "\n".join(lines) + ("\n" if lines else "")


# --- v2: the collectors' sources, by path and by command name ----------------------------------------

#: pseudo filesystems the target's statfs loop never stat()s (exporter/collectors/filesystem.py)
_NOT_STATED = {"proc", "sysfs", "devpts", "cgroup2", "cgroup"}


def render_statfs(state: HostState, now: float) -> str:
    """The statfs section as the target prints it: ``? <mount point>`` for each mount point tried,
    then ``stat -f -c '%b %f %a %s %c %d %n'`` over them, 4 KiB blocks (exporter/collectors/filesystem.py)."""
    tried, lines = [], []
    for line in render_mounts(state, now).splitlines():
        _device, mountpoint, fstype, *_ = line.split()
        if fstype in _NOT_STATED:
            continue
        row = next((r for r in _filesystems(state) if r[2] == mountpoint), None)
        if row is None:  # devtmpfs /dev: size from the mount options, nothing used
            size, used, inodes, iused = state.profile.mem_kib // 2, 0, state.profile.mem_kib // 8, 500
        else:
            _d, _f, _m, size, used, inodes, iused = row
        free = (size - used) // 4
        tried.append(f"? {mountpoint}")
        lines.append(f"{size // 4} {free} {free} 4096 {inodes} {inodes - iused} {mountpoint}")
    return "\n".join(tried + lines) + "\n"


def _has_arch_file(state: HostState) -> bool:
    """/proc/sys/kernel/arch exists from Linux 6.1 on."""
    major, minor = (int(part) for part in state.profile.distro[6].split(".")[:2])
    return (major, minor) >= (6, 1)


def _kernel(field: int | str) -> Callable[[HostState, float], str]:
    def render(state: HostState, now: float) -> str:
        if field == "arch":
            return "x86_64\n"
        if field == "domainname":
            return "(none)\n"
        if field == "ostype":
            return "Linux\n"
        return render_uname(state, now).splitlines()[int(field)] + "\n"

    return render


def render_date(state: HostState, now: float) -> str:
    return f"{now:.9f} +0000 UTC\n"


def render_machine(state: HostState, now: float) -> str:
    return "" if _has_arch_file(state) else "x86_64\n"


def _disk_device(state: HostState) -> tuple[str, str, str]:
    """(major, minor, name) of the root disk: every profile's root is /dev/nvme0n1p2."""
    return ("259", "0", "nvme0n1")


def render_diskstats(state: HostState, now: float) -> str:
    """Kernel 5.5+ layout (17 counters): the root disk, its partitions and an idle loop device; I/O
    grows with the simulated work (context switches as its clock)."""
    work = state.ctxt
    reads, writes = int(work * 0.002), int(work * 0.004)
    lines = [f"   7       0 loop0 {0} 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"]
    major, minor, name = _disk_device(state)
    row = [
        reads,
        int(reads * 0.1),
        reads * 16,
        int(reads * 0.3),
        writes,
        int(writes * 0.4),
        writes * 24,
        int(writes * 0.9),
        0,
        int((reads + writes) * 0.25),
        int((reads + writes) * 1.2),
        int(writes * 0.01),
        0,
        int(writes * 0.5),
        int(writes * 0.002),
        int(writes * 0.05),
        int(writes * 0.02),
    ]
    lines.append(f" {major:>4} {minor:>7} {name} " + " ".join(str(v) for v in row))
    for part in (1, 2):
        share = 0.05 if part == 1 else 0.95
        lines.append(f" {major:>4} {int(minor) + part:>7} {name}p{part} " + " ".join(str(int(v * share)) for v in row))
    return "\n".join(lines) + "\n"


def render_vmstat(state: HostState, now: float) -> str:
    work = state.ctxt
    fields = [
        ("nr_free_pages", int(state.profile.mem_kib / 4 * (1 - state.mem_used_fraction))),
        ("pgpgin", int(work * 0.016)),
        ("pgpgout", int(work * 0.048)),
        ("pswpin", 0),
        ("pswpout", 0),
        ("pgfault", int(work * 3.1)),
        ("pgmajfault", int(work * 0.0004)),
        ("oom_kill", 0),
    ]
    return "".join(f"{name} {value}\n" for name, value in fields)


def _pairs(groups: list[tuple[str, list[tuple[str, int]]]]) -> str:
    lines = []
    for protocol, fields in groups:
        lines.append(f"{protocol}: " + " ".join(name for name, _ in fields))
        lines.append(f"{protocol}: " + " ".join(str(value) for _, value in fields))
    return "\n".join(lines) + "\n"


def render_snmp(state: HostState, now: float) -> str:
    packets = int(state.rx_packets)
    out = int(state.tx_packets)
    return _pairs(
        [
            (
                "Ip",
                [
                    ("Forwarding", 2),
                    ("DefaultTTL", 64),
                    ("InReceives", packets),
                    ("InHdrErrors", 0),
                    ("InDelivers", packets),
                    ("OutRequests", out),
                ],
            ),
            ("Icmp", [("InMsgs", packets // 5000), ("InErrors", 0), ("OutMsgs", packets // 5000)]),
            (
                "Tcp",
                [
                    ("RtoAlgorithm", 1),
                    ("MaxConn", -1),
                    ("ActiveOpens", packets // 400),
                    ("PassiveOpens", packets // 900),
                    ("InSegs", int(packets * 0.93)),
                    ("OutSegs", int(out * 0.95)),
                    ("RetransSegs", out // 2000),
                    ("InErrs", 0),
                    ("OutRsts", packets // 3000),
                    ("CurrEstab", 12),
                ],
            ),
            (
                "Udp",
                [
                    ("InDatagrams", packets // 20),
                    ("NoPorts", packets // 9000),
                    ("InErrors", 0),
                    ("OutDatagrams", out // 20),
                    ("RcvbufErrors", 0),
                    ("SndbufErrors", 0),
                ],
            ),
        ]
    )


def render_netstat(state: HostState, now: float) -> str:
    packets = int(state.rx_packets)
    return _pairs(
        [
            (
                "TcpExt",
                [
                    ("SyncookiesSent", 0),
                    ("SyncookiesRecv", 0),
                    ("SyncookiesFailed", 0),
                    ("ListenOverflows", 0),
                    ("ListenDrops", 0),
                    ("TCPTimeouts", packets // 50000),
                    ("TCPSynRetrans", packets // 80000),
                ],
            ),
            ("IpExt", [("InNoRoutes", 0), ("InOctets", int(state.rx_bytes)), ("OutOctets", int(state.tx_bytes))]),
        ]
    )


def render_snmp6(state: HostState, now: float) -> str:
    fields = [
        ("Ip6InReceives", 7),
        ("Ip6InOctets", 560),
        ("Ip6OutOctets", 560),
        ("Icmp6InMsgs", 2),
        ("Icmp6InErrors", 0),
        ("Icmp6OutMsgs", 2),
        ("Udp6InDatagrams", 0),
        ("Udp6NoPorts", 0),
        ("Udp6InErrors", 0),
        ("Udp6OutDatagrams", 0),
        ("Udp6RcvbufErrors", 0),
        ("Udp6SndbufErrors", 0),
    ]
    return "".join(f"{name:<32}\t{value}\n" for name, value in fields)


def render_sockstat(state: HostState, now: float) -> str:
    tcp = 8 + len(state.sessions) * 20 + int(state.utilisation * 40)
    return (
        f"sockets: used {tcp * 3 + 120}\nTCP: inuse {tcp} orphan 0 tw {tcp // 2} alloc {tcp + 3} mem {tcp // 4}\n"
        "UDP: inuse 4 mem 2\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n"
    )


def render_sockstat6(state: HostState, now: float) -> str:
    return "TCP6: inuse 2\nUDP6: inuse 1\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n"


def render_softnet(state: HostState, now: float) -> str:
    per_cpu = int(state.rx_packets) // max(1, state.profile.cpus)
    return "".join(
        f"{per_cpu:08x} 00000000 {per_cpu // 100000:08x} " + " ".join(["00000000"] * 10) + f" {cpu:08x}\n"
        for cpu in range(state.profile.cpus)
    )


def _pressure(share: float) -> Callable[[HostState, float], str]:
    def render(state: HostState, now: float) -> str:
        total = int(state.uptime(now) * 1e6 * share * state.utilisation)
        lines = [f"some avg10=0.00 avg60=0.00 avg300=0.00 total={total}"]
        if share < 0.1:
            lines.append(f"full avg10=0.00 avg60=0.00 avg300=0.00 total={total // 3}")
        return "\n".join(lines) + "\n"

    return render


def render_arp(state: HostState, now: float) -> str:
    gateway = state.profile.ip.rsplit(".", 1)[0] + ".254"
    return (
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        f"{gateway:<16} 0x1         0x2         02:42:ac:11:00:fe     *        {state.profile.nic}\n"
    )


def render_udp(state: HostState, now: float) -> str:
    return (
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
        "pointer drops\n"
        "  512: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 17543 2 "
        "0000000000000000 0\n"
    )


def _tasks(state: HostState) -> tuple[int, int, int]:
    """(processes, threads, running) of the host, as its /proc/loadavg counts them."""
    load = state.utilisation * state.profile.cpus
    threads = 300 + int(load * 40)
    return (threads + 1) // 2, threads, 1 + int(state.utilisation * state.profile.cpus)


def render_processes(state: HostState, now: float) -> str:
    """``grep -Ho '^.*) .'`` over every task's stat file (the processes collector's command): the first
    processes run two threads each, kernel threads idle (I), ``running`` tasks run (R), the rest sleep."""
    processes, threads, running = _tasks(state)
    lines = []
    tid = processes
    for pid in range(1, processes + 1):
        for task in [pid] + ([tid := tid + 1] if pid <= threads - processes else []):
            letter = "R" if task <= running else "I" if 2 <= pid <= 40 else "S"
            comm = "kworker/0:1" if 2 <= pid <= 40 else "sshd" if pid == 41 else "bash"
            lines.append(f"/proc/{pid}/task/{task}/stat:{task} ({comm}) {letter}")
    return "\n".join(lines) + "\n"


def render_tcp(state: HostState, now: float) -> str:
    """/proc/net/tcp: sshd listening on 22, and each remote session's connection to it."""
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    lines = ["   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001"]
    for index, session in enumerate([s for s in state.sessions if s.remote], start=1):
        lines.append(
            f"{index:4d}: 0100007F:0016 0100007F:{40000 + session.id:04X} 01 00000024:00000000 "
            f"02:00000020 00000000     0        0 {2000 + index}"
        )
    return header + "\n".join(lines) + "\n"


def render_tcp6(state: HostState, now: float) -> str:
    return (
        "  sl  local_address                         remote_address                        st tx_queue rx_queue\n"
        "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000\n"
    )


def render_interrupts(state: HostState, now: float) -> str:
    cpus = state.profile.cpus
    header = "     " + "".join(f"{'CPU' + str(i):>11}" for i in range(cpus))
    timer = int(state.uptime(now) * 250)
    nic = int(state.rx_packets // max(1, cpus))
    rows = [
        ("0", [timer if i == 0 else 0 for i in range(cpus)], "IO-APIC   2-edge      timer"),
        ("125", [nic] * cpus, f"PCI-MSI 524288-edge      {state.profile.nic}"),
        ("LOC", [timer // cpus] * cpus, "Local timer interrupts"),
        ("RES", [int(state.ctxt // 1000 // cpus)] * cpus, "Rescheduling interrupts"),
    ]
    lines = [header] + [
        f"{name + ':':>4}" + "".join(f"{v:>11}" for v in counts) + f"   {info}" for name, counts, info in rows
    ]
    return "\n".join(lines) + "\nERR:          0\nMIS:          0\n"


def render_textfile_listing(state: HostState, now: float) -> str:
    return "dir /var/lib/prometheus/node-exporter\n"  # the package's directory, with no textfile scripts


def render_adjtimex(state: HostState, now: float) -> str:
    """adjtimex(2) of an NTP-synchronised clock: TIME_OK, offset 0.2 ms, max error 16 ms."""
    return f"0 0 200 -1234567 16000 500 8193 7 1 32768000 {int(now)} {int(now % 1 * 1e6)} 10000 0 0 0 0 0 0 0 0 37\n"


CLOCKSOURCE = "/sys/devices/system/clocksource/clocksource0/"

#: Every file the simulator can show, by absolute path on the simulated host.
FILES: dict[str, Callable[[HostState, float], str]] = {
    "/proc/stat": render_stat,
    "/proc/meminfo": render_meminfo,
    "/proc/loadavg": render_loadavg,
    "/proc/uptime": render_uptime,
    "/proc/net/dev": render_netdev,
    "/proc/1/mounts": render_mounts,
    "/proc/mounts": render_mounts,
    "/proc/self/mounts": render_mounts,
    "/proc/sys/fs/file-nr": render_filefd,
    "/proc/sys/kernel/ostype": _kernel("ostype"),
    "/proc/sys/kernel/hostname": _kernel(1),
    "/proc/sys/kernel/osrelease": _kernel(2),
    "/proc/sys/kernel/version": _kernel(3),
    "/proc/sys/kernel/arch": _kernel("arch"),
    "/proc/sys/kernel/domainname": _kernel("domainname"),
    "/etc/os-release": render_osrelease,
    CLOCKSOURCE + "available_clocksource": lambda state, now: "tsc hpet acpi_pm \n",
    CLOCKSOURCE + "current_clocksource": lambda state, now: "tsc\n",
    "/proc/diskstats": render_diskstats,
    "/proc/vmstat": render_vmstat,
    "/proc/net/snmp": render_snmp,
    "/proc/net/netstat": render_netstat,
    "/proc/net/snmp6": render_snmp6,
    "/proc/net/sockstat": render_sockstat,
    "/proc/net/sockstat6": render_sockstat6,
    "/proc/net/softnet_stat": render_softnet,
    "/proc/pressure/cpu": _pressure(0.3),
    "/proc/pressure/io": _pressure(0.05),
    "/proc/pressure/memory": _pressure(0.01),
    "/proc/sys/kernel/random/entropy_avail": lambda state, now: "256\n",
    "/proc/sys/kernel/random/poolsize": lambda state, now: "256\n",
    "/proc/net/arp": render_arp,
    "/proc/net/udp": render_udp,
    "/proc/net/udp6": render_udp,
    "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size": lambda state, now: "2097152\n",
    "/proc/interrupts": render_interrupts,
    "/proc/net/tcp": render_tcp,
    "/proc/net/tcp6": render_tcp6,
    "/proc/sys/kernel/threads-max": lambda state, now: "63448\n",
    "/proc/sys/kernel/pid_max": lambda state, now: "4194304\n",
}


#: Every constant command of the collectors the simulator answers, by the collector's command name.
def _idle_column(session: Session, now: float) -> str:
    """GNU ``who -u``'s idle column: ``.`` for input in the last minute, ``old`` beyond a day, else HH:MM."""
    idle = 0.0 if session.idle_since is None else max(0.0, now - session.idle_since)
    if idle < 60:
        return "."
    if idle >= 86400:
        return "old"
    return f"{int(idle // 3600):02d}:{int(idle % 3600 // 60):02d}"


def _who_u(state: HostState, now: float) -> list[str]:
    lines = []
    for session in state.sessions:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(session.login))
        host = "127.0.0.1" if session.remote else ":0"
        pid = 1000 + session.id * 7 + len(session.tty)
        lines.append(f"{session.user:<8} {session.tty:<12} {stamp} {_idle_column(session, now):>5} {pid:>11} ({host})")
    return lines


def _busybox_who(state: HostState, now: float) -> list[str]:
    lines = ["USER       TTY      IDLE      TIME            HOST"]
    for session in state.sessions:
        stamp = time.strftime("%b %e %H:%M:%S", time.gmtime(session.login))
        host = "127.0.0.1" if session.remote else ":0"
        lines.append(f"{session.user:<10} {session.tty:<8} {_idle_column(session, now):<9} {stamp}  {host}")
    return lines


def _own_session(state: HostState) -> int:
    """logind's id of the probe's own SSH session on this host."""
    return 1000 + state.profile.index


def _local(session: Session) -> bool:
    return not session.remote and session.tty.startswith("tty")


def render_session_files(state: HostState, now: float) -> dict[str, str]:
    """logind's state files (``/run/systemd/sessions/<id>``, logind's own key order) of every session,
    the probe's own included; none on busybox hosts (no systemd)."""
    if state.profile.busybox:
        return {}
    own = Session("optilab", "", now, remote=True, id=_own_session(state))
    files = {}
    for session in [s for s in state.sessions if s.id] + [own]:
        local = _local(session)
        kind = "x11" if local else "tty"
        lines = [
            "# This is private data. Do not parse.",
            f"UID={1000 + len(session.user)}",
            f"USER={session.user}",
            f"ACTIVE={int(local)}",
            f"IS_DISPLAY={int(local)}",
            "STATE=active",
            f"REMOTE={int(session.remote)}",
            f"TYPE={kind}",
            f"ORIGINAL_TYPE={kind}",
            "CLASS=user",
            f"SCOPE=session-{session.id}.scope",
            f"FIFO=/run/systemd/sessions/{session.id}.ref",
        ]
        if local:
            lines.append("SEAT=seat0")
        if session.tty:
            lines.append(f"TTY={session.tty}")
        if session.remote:
            lines.append("REMOTE_HOST=127.0.0.1")
        lines += [f"SERVICE={'sshd' if session.remote else 'gdm-password'}"]
        if local:
            lines.append(f"VTNR={session.tty[3:]}")
        lines += [
            f"LEADER={1000 + session.id * 7}",
            f"REALTIME={int(session.login * 1e6)}",
            f"MONOTONIC={int((session.login - state.boot_time) * 1e6)}",
        ]
        files[f"{SESSION_DIR}{session.id}"] = "\n".join(lines) + "\n"
    return files


def render_seats(state: HostState, now: float) -> str:
    """The seats command (``exporter.parsers_seat.SEATS_COMMAND``): the probe's own session id, then
    ``loginctl show-session``'s hints for the sessions the shell picks from the session files (not
    remote, not ours); busybox hosts have no logind and no session id."""
    if state.profile.busybox:
        return "self \n"
    lines = [f"self {_own_session(state)}"]
    wanted = [s for s in state.sessions if s.id and not s.remote]
    if wanted:
        lines.append("@loginctl")
    for index, session in enumerate(wanted):
        since = int(session.idle_since * 1e6) if session.idle_since is not None else 0
        lines += ([""] if index else []) + [
            f"Id={session.id}",
            f"LockedHint={'yes' if session.locked else 'no'}",
            f"IdleHint={'yes' if since else 'no'}",
            f"IdleSinceHint={since}",
        ]
    return "\n".join(lines) + "\n"


def render_who_u(state: HostState, now: float) -> str:
    """The ``who`` command (``who -u``, plain ``who`` on busybox)."""
    lines = _busybox_who(state, now) if state.profile.busybox else _who_u(state, now)
    return "\n".join(lines) + ("\n" if lines else "")


COMMANDS: dict[str, Callable[[HostState, float], str]] = {
    "statfs": render_statfs,
    "machine": render_machine,
    "date": render_date,
    "who": render_who_u,
    "textfile": render_textfile_listing,
    "adjtimex": render_adjtimex,
    "seats": render_seats,
    "processes": render_processes,
}


def _exists(path: str, state: HostState) -> bool:
    if path == "/proc/sys/kernel/arch":
        return _has_arch_file(state)
    return path in FILES


def _glob(pattern: str, state: HostState) -> list[str]:
    """Shell glob semantics over the simulated files: ``*`` stops at ``/``; no match, no file."""
    parts = pattern.split("/")
    return sorted(
        path
        for path in FILES
        if _exists(path, state)
        and len(path.split("/")) == len(parts)
        and all(fnmatch.fnmatchcase(a, b) for a, b in zip(path.split("/"), parts, strict=True))
    )


_LOOP = re.compile(r"for f in (\S+)/[^/\s*?\[]*\*; do case \$\{f##\*/\} in (\S+)\) ")


def script_request(script: str) -> tuple[list[str], list[str], str | None] | None:
    """(paths and globs, command names, the piped command's name) of a collection script, or None if
    ``script`` is not one."""
    lines = script.split("\n")
    if (
        len(lines) < 3
        or not lines[1].startswith("set -- ")
        or f"echo '{END}'" not in lines
        or not any(line.startswith(f"printf '{START}") for line in lines)
    ):
        return None
    commands = [
        line[len("printf '\\n==> cmd:") : -len(" <==\\n'")] for line in lines if line.startswith("printf '\\n==> cmd:")
    ]
    piped = next((line[len(PIPED) :] for line in lines if line.startswith(PIPED)), None)
    patterns = lines[1][len("set -- ") :].split()
    for line in lines[2:]:  # glob groups, directory loops and volatile files (exporter.command.build_script)
        if line.startswith("for f in ") and line.endswith("; do case $f in *'"):  # listed at every call
            patterns += line[len("for f in ") : -len("; do case $f in *'")].split()
            continue
        if not line.startswith(("for g in ", "for f in ")):
            continue
        for part in line.split(";"):
            if 'set -- "$@" ' in part and '"$f"' not in part:
                patterns += part.split('set -- "$@" ', 1)[1].split()
        for directory, lasts in _LOOP.findall(line):
            patterns += [f"{directory}/{last}" for last in lasts.split("|")]
    return patterns, commands, piped


def render_sources(
    patterns: list[str], commands: list[str], state: HostState, now: float, piped: str | None = None
) -> str:
    """What the collection script prints on this host for ``patterns`` and ``commands`` (``piped``:
    the command whose piped part head reads as its stdin, exporter/command.py)."""
    sources: dict[str, str] = {}
    for pattern in patterns:
        for path in _glob(pattern, state) if any(c in pattern for c in "*?[") else [pattern]:
            if path not in sources and _exists(path, state):
                sources[path] = FILES[path](state, now)
    for name in commands:
        if name in COMMANDS:
            sources[f"cmd:{name}"] = COMMANDS[name](state, now)
    if SESSION_FILES in patterns:
        sources.update(render_session_files(state, now))
    sources.update(sys_sources(patterns, commands, state, now))  # col-sys: /sys and systemctl (render_sys.py)
    return frame(sources, commands, piped)


def render_script(script: str, state: HostState, now: float) -> str | None:
    """The answer to a collection script, or None when ``script`` is not one."""
    request = script_request(script)
    if request is None:
        return None
    patterns, commands, piped = request
    return render_sources(patterns, commands, state, now, piped)
