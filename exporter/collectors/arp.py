"""node_exporter's arp collector: ARP entries per device from /proc/net/arp."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family


def parse_arp(text: str) -> dict[str, int]:
    entries: dict[str, int] = {}
    for line in text.splitlines():
        columns = line.split()
        if len(columns) < 6:
            raise ValueError("unexpected ARP table format")
        if columns[0] != "IP":
            entries[columns[-1]] = entries.get(columns[-1], 0) + 1
    return entries


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    family = Family("node_arp_entries", "gauge", "ARP entries by device", ("device",))
    for device, count in parse_arp(source(sources, "/proc/net/arp")).items():
        if options.keep("device-include", "device-exclude", device):
            family.add((device,), count)
    return [family]


COLLECTOR = Collector(
    name="arp", paths=("/proc/net/arp",), collect=collect, flags=(("device-include", ""), ("device-exclude", ""))
)
