"""node_exporter's netdev collector: one counter per /proc/net/dev column and device.

Upstream excludes no device by default (Debian's build excludes ``lo``); ``device-include`` and
``device-exclude`` filter like ``--collector.netdev.device-{include,exclude}``. node_exporter 1.5
reads the same counters over netlink and adds ``receive_nohandler``, which /proc/net/dev lacks.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family
from optilab.exporter.parsers_proc import parse_netdev


def netdev_families(netdev: dict[str, dict[str, int]], options: CollectorOptions) -> list[Family]:
    families: dict[str, Family] = {}
    for device, counters in netdev.items():
        if not options.keep("device-include", "device-exclude", device):
            continue
        for column, value in counters.items():
            family = families.get(column)
            if family is None:
                family = families[column] = Family(
                    f"node_network_{column}_total", "counter", f"Network device statistic {column}.", ("device",))
            family.samples.append(((device,), float(value)))
    return list(families.values())


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    return netdev_families(parse_netdev(source(sources, "/proc/net/dev")), options)


COLLECTOR = Collector(
    name="netdev", paths=("/proc/net/dev",), collect=collect,
    flags=(("device-include", ""), ("device-exclude", "")),
)
