"""What a simulated host shows in /sys and to ``systemctl`` (col-sys's collectors), from its model.

Pure functions of the host's profile and state, like labsim/render.py: the NIC's attributes
(netclass), per-CPU frequencies (cpufreq), a coretemp hwmon chip plus an ACPI thermal zone whose
temperature follows the machine's load (hwmon, thermal_zone), and systemd's unit list (the slow
tier). A busybox-style host (Alpine) has no systemd: its ``systemctl`` is "not found".
"""

from __future__ import annotations

import fnmatch

from optilab.labsim.model import HostState, _unit


def render_sys(state: HostState, now: float) -> dict[str, str]:
    """``{path: text}`` of the /sys files the netclass, cpufreq, hwmon and thermal_zone collectors read."""
    profile = state.profile
    nic = f"/sys/class/net/{profile.nic}/"
    index = profile.index
    mac = f"52:54:00:{index // 65536 % 256:02x}:{index // 256 % 256:02x}:{index % 256:02x}"
    files = {}
    for prefix, attrs in (
        (
            nic,
            {
                "address": mac,
                "broadcast": "ff:ff:ff:ff:ff:ff",
                "operstate": "up",
                "carrier": "1",
                "speed": "1000",
                "duplex": "full",
                "mtu": "1500",
                "type": "1",
                "flags": "0x1003",
                "ifindex": "2",
                "iflink": "2",
                "tx_queue_len": "1000",
                "carrier_changes": "2",
                "carrier_up_count": "1",
                "carrier_down_count": "1",
                "addr_assign_type": "0",
                "statistics/rx_nohandler": "0",  # netdev reads it per device (kernels since 4.6)
            },
        ),
        (
            "/sys/class/net/lo/",
            {
                "address": "00:00:00:00:00:00",
                "broadcast": "00:00:00:00:00:00",
                "operstate": "unknown",
                "carrier": "1",
                "mtu": "65536",
                "type": "772",
                "flags": "0x9",
                "ifindex": "1",
                "iflink": "1",
                "tx_queue_len": "1000",
                "statistics/rx_nohandler": "0",
            },
        ),
    ):
        for attr, value in attrs.items():
            files[prefix + attr] = value + "\n"
    load = state.utilisation
    for cpu in range(profile.cpus):
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/"
        wobble = _unit(profile.seed, "freq", cpu, int(now // 15))
        files[base + "scaling_cur_freq"] = f"{int(800000 + (3400000 * min(1.0, load + 0.2 * wobble)))}\n"
        files[base + "scaling_min_freq"] = "800000\n"
        files[base + "scaling_max_freq"] = "4200000\n"
        files[base + "cpuinfo_min_freq"] = "800000\n"
        files[base + "cpuinfo_max_freq"] = "4200000\n"
    package = int(35000 + 45000 * load + 2000 * _unit(profile.seed, "temp", int(now // 15)))
    chip = "/sys/class/hwmon/hwmon1/"
    files[chip + "name"] = "coretemp\n"
    files[chip + "temp1_input"] = f"{package}\n"
    files[chip + "temp1_label"] = "Package id 0\n"
    files[chip + "temp1_max"] = "100000\n"
    files[chip + "temp1_crit"] = "100000\n"
    files[chip + "temp1_crit_alarm"] = "0\n"
    files["/sys/class/hwmon/hwmon0/name"] = "acpitz\n"
    files["/sys/class/hwmon/hwmon0/temp1_input"] = "27800\n"
    files["/sys/class/thermal/thermal_zone0/type"] = "x86_pkg_temp\n"
    files["/sys/class/thermal/thermal_zone0/policy"] = "step_wise\n"
    files["/sys/class/thermal/thermal_zone0/temp"] = f"{package}\n"
    files["/proc/filesystems"] = FILESYSTEMS
    return files


#: /proc/filesystems of a Debian/RHEL kernel without SELinux built in (the selinux collector reads it)
FILESYSTEMS = "".join(
    f"nodev\t{name}\n"
    for name in (
        "sysfs",
        "tmpfs",
        "bdev",
        "proc",
        "cgroup",
        "cgroup2",
        "cpuset",
        "devtmpfs",
        "debugfs",
        "securityfs",
        "sockfs",
        "bpf",
        "pipefs",
        "ramfs",
        "hugetlbfs",
        "devpts",
        "mqueue",
        "pstore",
        "autofs",
    )
)
FILESYSTEMS += "\text4\n\txfs\n\tvfat\n"


#: what ``cd -P`` finds behind each chip's ``device`` link (the hwmon collector's command)
HWMON_LINKS = "hwmon1 /sys/devices/platform/coretemp.0\n"

_UNITS = (
    ("ssh.service", "active", "running", "notify", "OpenBSD Secure Shell server"),
    ("cron.service", "active", "running", "simple", "Regular background program processing daemon"),
    ("gdm.service", "active", "running", "simple", "GNOME Display Manager"),
    ("cups.service", "active", "running", "notify", "CUPS Scheduler"),
    ("systemd-journald.service", "active", "running", "notify", "Journal Service"),
    ("apt-daily.service", "inactive", "dead", "oneshot", "Daily apt download activities"),
    ("apt-daily.timer", "active", "waiting", "", "Daily apt download activities"),
    ("cups.socket", "active", "listening", "", "CUPS Scheduler"),
    ("home.mount", "active", "mounted", "ext4", "/home"),
    ("user.slice", "active", "active", "", "User and Session Slice"),
)


def render_systemctl(state: HostState, now: float) -> dict[str, str]:
    """``{"cmd:systemd_units": ..., ...}``: what the systemd collector's commands print; ``{}`` on busybox."""
    if state.profile.busybox:
        return {}
    broken = _unit(state.profile.seed, "unit-failed", int(now // 3600)) < 0.1  # a failed unit now and then
    units = [
        (name, "failed", "failed", kind, text) if broken and name == "cups.service" else (name, a, s, kind, text)
        for name, a, s, kind, text in _UNITS
    ]
    listing = "".join(f"{name} loaded {active} {sub} {text}\n" for name, active, sub, _kind, text in units)
    blocks = []
    for name, _active, _sub, kind, _text in units:
        lines = [f"Id={name}"]
        if name.endswith((".service", ".mount")):
            lines.append(f"Type={kind}")
        if name.endswith(".timer"):
            lines.append(f"LastTriggerUSec=@{int(now - now % 86400)}")
        if name.endswith(".socket"):
            lines += ["NAccepted=0", "NConnections=0", "NRefused=0"]
        blocks.append("\n".join(lines) + "\n")
    return {
        "cmd:systemd_units": listing,
        "cmd:systemd_show": "\n".join(blocks),
        "cmd:systemd_state": "degraded\n" if broken else "running\n",
        "cmd:systemd_version": "systemd 252 (252.38-1~deb12u1)\n+PAM +AUDIT +SELINUX\n",
    }


def _matches(path: str, pattern: str) -> bool:
    """Shell glob semantics: ``*`` stops at ``/``."""
    parts, names = pattern.split("/"), path.split("/")
    return len(parts) == len(names) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(names, parts, strict=True))


def sys_sources(patterns: list[str], commands: list[str], state: HostState, now: float) -> dict[str, str]:
    """The sources of this module a collection script asks for: files matching ``patterns``, and
    ``cmd:<name>`` for the commands among ``commands`` this host answers (hwmon's links, systemctl)."""
    files = render_sys(state, now)
    sources = {path: text for path, text in files.items() if any(_matches(path, pattern) for pattern in patterns)}
    answers = {"cmd:hwmon_links": HWMON_LINKS, **render_systemctl(state, now)}
    sources.update({f"cmd:{name}": answers[f"cmd:{name}"] for name in commands if f"cmd:{name}" in answers})
    return sources
