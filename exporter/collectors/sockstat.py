"""node_exporter's sockstat collector: /proc/net/sockstat and sockstat6.

``mem`` counts pages; ``*_mem_bytes`` multiplies by the target's page size, derived from its THP PMD
size (page size × page size / 8 entries: 2 MiB for 4 KiB pages, 512 MiB for 64 KiB) and 4096 where
the kernel has no transparent huge pages.
"""

from __future__ import annotations

import math

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family, gauge

PMD_SIZE = "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"


def page_size(sources: Sources) -> int:
    text = sources.get(PMD_SIZE, "").strip()
    if text.isdigit() and int(text) > 0:
        size = math.isqrt(int(text) * 8)
        if size * size == int(text) * 8:
            return size
    return 4096


def parse_sockstat(text: str) -> tuple[int | None, dict[str, dict[str, int]]]:
    """(sockets used, {protocol: {field: value}}) of ``PROTO: key value key value`` lines."""
    used = None
    protocols: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        head, colon, rest = line.partition(":")
        parts = rest.split()
        if not line.strip():
            continue
        if not colon or not parts or len(parts) % 2:
            raise ValueError(f"malformed sockstat line: {line!r}")
        fields = {parts[i]: int(parts[i + 1]) for i in range(0, len(parts), 2)}
        if head == "sockets":
            used = fields.get("used")
        else:
            protocols[head] = fields
    return used, protocols


_ORDER = ("inuse", "orphan", "tw", "alloc", "mem", "memory")


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    families = []
    page = page_size(sources)
    for path, ipv6 in (("/proc/net/sockstat", False), ("/proc/net/sockstat6", True)):
        if ipv6 and path not in sources:
            continue
        used, protocols = parse_sockstat(source(sources, path))
        if not ipv6 and used is not None:
            families.append(gauge("node_sockstat_sockets_used", "Number of IPv4 sockets in use.", used))
        for protocol, fields in protocols.items():
            pairs = [(name, fields[name]) for name in _ORDER if name in fields]
            if "mem" in fields:
                pairs.append(("mem_bytes", fields["mem"] * page))
            families += [
                gauge(f"node_sockstat_{protocol}_{name}", f"Number of {protocol} sockets in state {name}.", value)
                for name, value in pairs
            ]
    return families


COLLECTOR = Collector(name="sockstat", paths=("/proc/net/sockstat", "/proc/net/sockstat6", PMD_SIZE), collect=collect)
