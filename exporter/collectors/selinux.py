"""selinux: ``node_selinux_*`` (node_exporter's selinux collector, which asks libselinux).

The closest files to what libselinux reads: SELinux is enabled when the kernel knows selinuxfs
(``/proc/filesystems``, libselinux's own first check) and selinuxfs answers
(``/sys/fs/selinux/enforce`` readable; libselinux also checks the process context is not
``kernel``, which a file read cannot). The current mode is that file (1 enforcing, 0 permissive),
the configured mode ``SELINUX=`` of /etc/selinux/config (enforcing 1, permissive 0, disabled -1),
the file libselinux reads. Upstream exports ``node_selinux_enabled 0`` on every host without
SELinux, and so does this one; an answer without /proc/filesystems gets no series (it is no Linux
host's), a malformed one fails the collector.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family, gauge

FILESYSTEMS = "/proc/filesystems"
ENFORCE = "/sys/fs/selinux/enforce"
CONFIG = "/etc/selinux/config"
_MODES = {"enforcing": 1, "permissive": 0, "disabled": -1}


def kernel_filesystems(text: str) -> set[str]:
    """The names in /proc/filesystems (``nodev\\tsysfs``, ``\\text4``); ``ValueError`` on other lines."""
    names = set()
    for line in text.splitlines():
        flag, tab, name = line.partition("\t")
        if not tab or flag not in ("", "nodev") or not name.strip():
            raise ValueError(f"{FILESYSTEMS}: unexpected line {line[:40]!r}")
        names.add(name.strip())
    return names


def parse(sources: Sources) -> tuple[bool, int | None, int | None] | None:
    """(enabled, current mode, configured mode); None without /proc/filesystems (not a Linux answer:
    no series, so an empty answer stays a failed probe)."""
    if FILESYSTEMS not in sources:
        return None
    known = kernel_filesystems(sources[FILESYSTEMS])
    enforce = sources.get(ENFORCE)
    if "selinuxfs" not in known or enforce is None:
        return False, None, None
    if enforce.strip() not in ("0", "1"):
        raise ValueError(f"{ENFORCE} holds {enforce[:20]!r}, not 0 or 1")
    configured = -1  # libselinux: no SELINUX= line means disabled
    for line in sources.get(CONFIG, "").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == "SELINUX":
            configured = _MODES.get(value.strip().strip('"').lower(), -1)
    return True, int(enforce.strip()), configured


def build(enabled: bool, current: int | None, configured: int | None) -> list[Family]:
    families = [gauge("node_selinux_enabled", "SELinux is enabled, 1 is true, 0 is false", 1.0 if enabled else 0.0)]
    if enabled:
        families.append(gauge("node_selinux_config_mode", "Configured SELinux enforcement mode", configured))
        families.append(gauge("node_selinux_current_mode", "Current SELinux enforcement mode", current))
    return families


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    state = parse(sources)
    return [] if state is None else build(*state)


COLLECTOR = Collector("selinux", (FILESYSTEMS, ENFORCE, CONFIG), collect)
