"""selinux: ``node_selinux_*`` (node_exporter's selinux collector, which asks libselinux).

The closest files: SELinux is enabled when selinuxfs answers (``/sys/fs/selinux/enforce`` readable;
libselinux also checks the process context is not ``kernel``, which a file read cannot), the
current mode is that file (1 enforcing, 0 permissive) and the configured mode is ``SELINUX=`` of
/etc/selinux/config (enforcing 1, permissive 0, disabled -1), which is what libselinux reads.
Upstream exports ``node_selinux_enabled 0`` on every host without SELinux, and so does this one.
"""

from __future__ import annotations

from exporter.collectors.base import Collector, CollectorOptions, Sources
from exporter.family import Family, gauge

ENFORCE = "/sys/fs/selinux/enforce"
CONFIG = "/etc/selinux/config"
_MODES = {"enforcing": 1, "permissive": 0, "disabled": -1}


def parse(sources: Sources) -> tuple[bool, int | None, int | None]:
    """(enabled, current mode, configured mode)."""
    enforce = sources.get(ENFORCE)
    if enforce is None or enforce.strip() not in ("0", "1"):
        return False, None, None
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
    return build(*parse(sources))


COLLECTOR = Collector("selinux", (ENFORCE, CONFIG), collect)
