"""Render a simulated host's state in the exact text formats of the files and tools the probe reads.

The exporter's parsers only ever see what a real machine prints, so the simulator prints the same:
kernel column layouts of /proc, GNU ``df`` (or busybox's on Alpine) with its computed column widths,
``who`` lines, os-release quoting. Each renderer is a pure function of (state, simulated time).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from labsim.model import KIB, USER_HZ, HostState, Session

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
    return {"MemTotal": total, "MemFree": free, "MemAvailable": free + int(cached * 0.9) + buffers,
            "Buffers": buffers, "Cached": cached, "used": used}


def render_meminfo(state: HostState, now: float) -> str:
    mem = _memory(state)
    used, cached = mem["used"], mem["Cached"]
    swap = 2 * KIB * KIB if not state.profile.busybox else 0
    fields: list[tuple[str, int]] = [
        ("MemTotal", mem["MemTotal"]), ("MemFree", mem["MemFree"]), ("MemAvailable", mem["MemAvailable"]),
        ("Buffers", mem["Buffers"]), ("Cached", cached), ("SwapCached", 0),
        ("Active", int(used * 0.6 + cached * 0.4)), ("Inactive", int(used * 0.3 + cached * 0.6)),
        ("Active(anon)", int(used * 0.55)), ("Inactive(anon)", int(used * 0.25)),
        ("Active(file)", int(cached * 0.4)), ("Inactive(file)", int(cached * 0.6)),
        ("Unevictable", 18188), ("Mlocked", 17260), ("SwapTotal", swap), ("SwapFree", swap),
        ("Dirty", 236), ("Writeback", 0), ("AnonPages", int(used * 0.8)), ("Mapped", int(cached * 0.2)),
        ("Shmem", int(used * 0.05)), ("KReclaimable", int(used * 0.06)), ("Slab", int(used * 0.08)),
        ("SReclaimable", int(used * 0.06)), ("SUnreclaim", int(used * 0.02)), ("KernelStack", 12364),
        ("PageTables", int(used * 0.01)), ("NFS_Unstable", 0), ("Bounce", 0), ("WritebackTmp", 0),
        ("CommitLimit", mem["MemTotal"] // 2 + swap), ("Committed_AS", int(used * 1.4)),
        ("VmallocTotal", 34359738367), ("VmallocUsed", 45180), ("VmallocChunk", 0), ("Percpu", 6880),
        ("AnonHugePages", 0), ("ShmemHugePages", 0), ("ShmemPmdMapped", 0),
    ]
    lines = [f"{name + ':':<16}{value:>8} kB" for name, value in fields]
    lines += [f"{name + ':':<16}{0:>8}" for name in
              ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp")]
    lines += ["Hugepagesize:       2048 kB", "Hugetlb:               0 kB"]
    return "\n".join(lines) + "\n"


def render_loadavg(state: HostState, now: float) -> str:
    load = state.utilisation * state.profile.cpus
    running = 1 + int(state.utilisation * state.profile.cpus)
    return (f"{load:.2f} {load * 0.93:.2f} {load * 0.85:.2f} {running}/{300 + int(load * 40)} "
            f"{int(state.processes) + 1}\n")


def render_uptime(state: HostState, now: float) -> str:
    uptime = state.uptime(now)
    idle = sum(cpu[3] for cpu in state.cpu) / USER_HZ
    return f"{uptime:.2f} {idle:.2f}\n"


def render_netdev(state: HostState, now: float) -> str:
    lo = int(state.uptime(now) * 900)
    rows = [("lo", lo, lo // 90, lo, lo // 90),
            (state.profile.nic, int(state.rx_bytes), int(state.rx_packets),
             int(state.tx_bytes), int(state.tx_packets))]
    lines = ["Inter-|   Receive                                                |  Transmit",
             " face |bytes    packets errs drop fifo frame compressed multicast|"
             "bytes    packets errs drop fifo colls carrier compressed"]
    for name, rxb, rxp, txb, txp in rows:
        lines.append(f"{name:>6}:{rxb:>8} {rxp:>7} {0:>4} {0:>4} {0:>4} {0:>5} {0:>10} {0:>9} "
                     f"{txb:>8} {txp:>7} {0:>4} {0:>4} {0:>4} {0:>5} {0:>7} {0:>10}")
    return "\n".join(lines) + "\n"


def _filesystems(state: HostState) -> list[tuple[str, str, str, int, int, int, int]]:
    """(device, fstype, mountpoint, size KiB, used KiB, inodes, inodes used) for df and mounts."""
    rows = []
    for disk in state.profile.disks:
        fraction = state.root_used_fraction if disk.mountpoint == "/" else 0.35
        used = int(disk.size_kib * fraction)
        rows.append((disk.device, disk.fstype, disk.mountpoint, disk.size_kib, used,
                     disk.inodes, int(disk.inodes * fraction * 0.3)))
    mem = state.profile.mem_kib
    rows.append(("tmpfs", "tmpfs", "/run", mem // 10, 1800, mem // 4, 900))
    rows.append(("tmpfs", "tmpfs", "/dev/shm", mem // 2, 0, mem // 4, 1))  # noqa: S108 - a mount name
    return rows


def render_mounts(state: HostState, now: float) -> str:
    lines = ["proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
             "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0",
             f"devtmpfs /dev devtmpfs rw,nosuid,relatime,size={state.profile.mem_kib // 2}k,mode=755 0 0",
             "devpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000 0 0"]
    for device, fstype, mountpoint, size, *_ in _filesystems(state):
        options = MOUNT_OPTIONS.get(fstype, f"rw,nosuid,nodev,size={size}k,mode=755")
        lines.append(f"{device} {mountpoint} {fstype} {options} 0 0")
    lines.append("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0")
    return "\n".join(lines) + "\n"


def render_filefd(state: HostState, now: float) -> str:
    return f"{2000 + int(state.utilisation * 6000)}\t0\t9223372036854775807\n"


def _percent(used: int, total: int) -> str:
    return f"{-(-used * 100 // total) if total else 0}%"


def _table(header: list[str], rows: list[list[str]], busybox: bool) -> str:
    """GNU df pads every column to its widest cell; busybox uses fixed printf widths."""
    if busybox:
        lines = [f"{header[0]:<20} {header[1]:<10} {' '.join(header[2:])}"]
        lines += [f"{r[0]:<20} {r[1]:<10} {r[2]:>9} {r[3]:>9} {r[4]:>9} {r[5]:>3} {r[6]}" for r in rows]
        return "\n".join(lines) + "\n"
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    lines = []
    for row in table:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[i].rjust(widths[i]) for i in range(2, 6)]
        lines.append(" ".join([*cells, row[6]]))
    return "\n".join(lines) + "\n"


def render_df(state: HostState, now: float) -> str:
    rows = [[dev, fs, str(size), str(used), str(size - used), _percent(used, size), mp]
            for dev, fs, mp, size, used, _i, _iu in _filesystems(state)]
    header = ["Filesystem", "Type", "1024-blocks", "Used", "Available", "Capacity", "Mounted on"]
    return _table(header, rows, state.profile.busybox)


def render_dfi(state: HostState, now: float) -> str:
    rows = [[dev, fs, str(inodes), str(iused), str(inodes - iused), _percent(iused, inodes), mp]
            for dev, fs, mp, _s, _u, inodes, iused in _filesystems(state)]
    if state.profile.busybox:
        header = ["Filesystem", "Type", "   Inodes", "     Used", "Available", "Capacity", "Mounted on"]
    else:
        header = ["Filesystem", "Type", "Inodes", "IUsed", "IFree", "IUse%", "Mounted on"]
    return _table(header, rows, state.profile.busybox)


def render_uname(state: HostState, now: float) -> str:
    distro = state.profile.distro
    return f"Linux\n{state.profile.hostname}\n{distro[6]}\n{distro[7]}\nx86_64\n"


def render_osrelease(state: HostState, now: float) -> str:
    os_id, version_id, name, pretty, codename, id_like, *_ = state.profile.distro
    lines = [f'PRETTY_NAME="{pretty}"', f'NAME="{name}"', f'VERSION_ID="{version_id}"']
    if os_id == "alpine":
        lines = [f"NAME=\"{name}\"", f"ID={os_id}", f"VERSION_ID={version_id}", f'PRETTY_NAME="{pretty}"',
                 'HOME_URL="https://alpinelinux.org/"', 'BUG_REPORT_URL="https://gitlab.alpinelinux.org/"']
        return "\n".join(lines) + "\n"
    lines.append(f'VERSION="{VERSIONS[os_id]}"')
    if codename:
        lines.append(f"VERSION_CODENAME={codename}")
    lines.append(f"ID={os_id}")
    if id_like:
        lines.append(f'ID_LIKE="{id_like}"' if " " in id_like else f"ID_LIKE={id_like}")
    lines.append(f'HOME_URL="https://www.{os_id}.org/"')
    return "\n".join(lines) + "\n"


def render_time(state: HostState, now: float) -> str:
    return f"{int(now)}\n"


def render_who(state: HostState, now: float) -> str:
    lines = []
    for session in state.sessions:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(session.login))
        lines.append(f"{session.user:<8} {session.tty:<12} {stamp} (:0)")
    return "\n".join(lines) + ("\n" if lines else "")


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


def _logind_block(session: Session, state: HostState) -> list[str]:
    local = not session.remote and session.tty.startswith("tty")
    since = int(session.idle_since * 1e6) if session.idle_since is not None else 0
    return [f"Id={session.id}", "Class=user", f"Type={'x11' if local else 'tty'}",
            f"Remote={'yes' if session.remote else 'no'}", f"Seat={'seat0' if local else ''}",
            f"TTY={session.tty}", "State=active", f"LockedHint={'yes' if session.locked else 'no'}",
            f"IdleHint={'yes' if since else 'no'}", f"IdleSinceHint={since}"]


def render_seats(state: HostState, now: float) -> str:
    """The seats section (``exporter.parsers_seat.SEATS_COMMAND``): logind's view where the distro has
    systemd, busybox ``who`` on Alpine; the probe's own SSH session is listed as logind would."""
    own = 1000 + state.profile.index
    lines = [f"now {int(now)}", f"self {'' if state.profile.busybox else own}"]
    if not state.profile.busybox:
        lines.append("@loginctl")
        blocks = [_logind_block(s, state) for s in state.sessions if s.id]
        blocks.append([f"Id={own}", "Class=user", "Type=tty", "Remote=yes", "Seat=", "TTY=", "State=active",
                       "LockedHint=no", "IdleHint=no", "IdleSinceHint=0"])
        for index, block in enumerate(blocks):
            lines += ([""] if index else []) + block
    lines.append("@who")
    lines += _busybox_who(state, now) if state.profile.busybox else _who_u(state, now)
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[HostState, float], str]] = {
    "stat": render_stat, "meminfo": render_meminfo, "loadavg": render_loadavg, "uptime": render_uptime,
    "netdev": render_netdev, "mounts": render_mounts, "filefd": render_filefd, "df": render_df,
    "dfi": render_dfi, "uname": render_uname, "osrelease": render_osrelease, "time": render_time,
    "who": render_who, "seats": render_seats,
}
