"""The lab gauges of the original design that need no history: RAM, root disk, logged-in users.

Families come without host labels; the probe gives them ``hostname``, ``ip`` and ``department``
(docs/interfaces.md), and adds ``system_cpu_usage``, which needs this host's previous /proc/stat
(``exporter/metrics.py``). Each gauge is left out when its input is missing: a made-up zero would
look like an idle, empty lab.
"""

from __future__ import annotations

from optilab.exporter.collectors import filesystem
from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family, gauge
from optilab.exporter.parsers_host import parse_who
from optilab.exporter.parsers_proc import Meminfo, parse_meminfo_cached
from optilab.exporter.parsers_seat import WHO_COMMAND

NAME = "lab"


def ram_usage_percent(meminfo: Meminfo) -> float | None:
    """Used percent (MemTotal − MemAvailable) / MemTotal; before Linux 3.14 (no MemAvailable) the
    classic MemFree + Buffers + Cached stands in for what is available."""
    fields = meminfo.bytes
    total = fields["MemTotal"]
    if total <= 0:
        return None
    available = fields.get("MemAvailable")
    if available is None:
        available = sum(fields.get(name, 0) for name in ("MemFree", "Buffers", "Cached"))
    return 100.0 * (total - available) / total


def disk_usage_percent(stat: filesystem.Statfs) -> float | None:
    """Used percent as df computes it: used / (used + available); root's reserve counts as used."""
    used = stat.blocks - stat.free
    return 100.0 * used / (used + stat.avail) if used + stat.avail > 0 else None


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    families = []
    if "/proc/meminfo" in sources:
        ram = ram_usage_percent(parse_meminfo_cached(sources["/proc/meminfo"]))
        if ram is not None:
            families.append(
                gauge("system_ram_usage", "Percent of memory in use: (MemTotal - MemAvailable) / MemTotal.", ram)
            )
    root = filesystem.parse_statfs(sources.get("cmd:statfs", "")).get("/")
    disk = disk_usage_percent(root) if root is not None else None
    if disk is not None:
        families.append(
            gauge(
                "system_disk_usage",
                "Percent used of the root filesystem, as df computes it: used / (used + available).",
                disk,
            )
        )
    if "cmd:who" in sources:
        families.append(
            gauge(
                "optilab_logged_in_users",
                "Login sessions listed by who (lab occupancy).",
                len(parse_who(sources["cmd:who"])),
            )
        )
    return families


COLLECTOR = Collector(
    name=NAME,
    paths=("/proc/meminfo", filesystem.MOUNTS),
    commands=(("statfs", filesystem.STATFS), ("who", WHO_COMMAND)),  # who -u: shared with seats
    piped=(("statfs", filesystem.STATFS_PIPED),),
    listings=filesystem.LISTINGS,
    collect=collect,
)
