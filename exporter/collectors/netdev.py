"""node_exporter's netdev collector: one counter per /proc/net/dev column and device, plus ``receive_nohandler``.

node_exporter 1.5 reads the counters over netlink (``rtnl_link_stats64``) and, without
``--collector.netdev.enable-detailed-metrics``, sums them into /proc/net/dev's columns (its
``legacy()``: ``receive_drop`` = rx_dropped + rx_missed_errors, ``receive_frame`` = frame + length +
over + crc errors, ``transmit_carrier`` = carrier + aborted + heartbeat + window errors). The kernel
prints /proc/net/dev with the very same sums of the same ``dev_get_stats()`` (net/core/net-procfs.c),
so every column read here is netlink's value. The one counter /proc/net/dev lacks, ``rx_nohandler``,
is read from ``/sys/class/net/<dev>/statistics/rx_nohandler`` — one more file per device, where
reading all 24 statistics files would cost the target ~24 (bench/netdev_cost.py) and give no other
value, each file being a separate ``dev_get_stats()`` snapshot. A kernel older than 4.6 (the release
that added the counter, to netlink and sysfs alike) has no such file: netlink then carries the
shorter struct and node_exporter exports 0, as done here for such a kernel (its release from
/proc/sys/kernel/osrelease, which uname reads anyway). On a newer kernel a device whose file is
missing (it vanished between the reads) gets no nohandler series rather than a false 0.

Upstream excludes no device by default (Debian's build excludes ``lo``); ``device-include`` and
``device-exclude`` filter like ``--collector.netdev.device-{include,exclude}``.
"""

from __future__ import annotations

import re

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.collectors.sysattrs import devices, uint
from optilab.exporter.family import Family
from optilab.exporter.parsers_proc import parse_netdev

PATH = "/proc/net/dev"
SYS_PREFIX = "/sys/class/net/"
NOHANDLER = "statistics/rx_nohandler"
OSRELEASE = "/proc/sys/kernel/osrelease"
_RELEASE = re.compile(r"(\d+)\.(\d+)")


def _before_nohandler(sources: Sources) -> bool:
    """Whether the target's kernel predates rx_nohandler (Linux 4.6); unknown counts as not."""
    match = _RELEASE.match(sources.get(OSRELEASE, ""))
    return match is not None and (int(match.group(1)), int(match.group(2))) < (4, 6)


def nohandler(sources: Sources) -> dict[str, int] | None:
    """``{device: rx_nohandler}`` from sysfs; ``None`` on a kernel without the counter (0 for all)."""
    found = devices(sources, SYS_PREFIX, (NOHANDLER,))
    if not found and _before_nohandler(sources):
        return None
    counts = {}
    for device, attrs in found.items():
        value = uint(attrs[NOHANDLER])
        if value is None:
            raise ValueError(f"{SYS_PREFIX}{device}/{NOHANDLER}: {attrs[NOHANDLER][:30]!r} is not a counter")
        counts[device] = value
    return counts


def netdev_families(netdev: dict[str, dict[str, int]], options: CollectorOptions,
                    no_handler: dict[str, int] | None = None) -> list[Family]:
    """One counter family per column; ``no_handler`` is :func:`nohandler`'s answer (``None``: 0 for all)."""
    families: dict[str, Family] = {}
    for device, counters in netdev.items():
        if not options.keep("device-include", "device-exclude", device):
            continue
        columns = list(counters.items())
        if no_handler is None:
            columns.append(("receive_nohandler", 0))
        elif device in no_handler:
            columns.append(("receive_nohandler", no_handler[device]))
        for column, value in columns:
            family = families.get(column)
            if family is None:
                family = families[column] = Family(
                    f"node_network_{column}_total", "counter", f"Network device statistic {column}.", ("device",))
            family.samples.append(((device,), float(value)))
    return list(families.values())


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    return netdev_families(parse_netdev(source(sources, PATH)), options, nohandler(sources))


COLLECTOR = Collector(
    name="netdev", paths=(PATH, SYS_PREFIX + "*/" + NOHANDLER, OSRELEASE), collect=collect,
    flags=(("device-include", ""), ("device-exclude", "")),
)
