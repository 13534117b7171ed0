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
``enable-detailed-metrics`` (off by default) exports netlink's 24 counters under their own names
(``receive_errors``, ``receive_missed_errors``, ...) instead of the summed columns: only then are all
24 ``statistics/*`` files read (:attr:`Collector.flag_paths`). ``netlink`` false is upstream's
/proc/net/dev reader: the same columns without ``receive_nohandler`` (detailed: procfs' names,
``receive_errors``, ``receive_dropped``, unsummed). ``address-info`` is not offered: the addresses
come from netlink only, no file lists IPv4 addresses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from optilab.exporter.collectors.base import GO_BOOLS, Collector, CollectorOptions, Sources, go_bool, source
from optilab.exporter.collectors.sysattrs import devices, uint
from optilab.exporter.family import Family
from optilab.exporter.parsers_proc import parse_netdev

PATH = "/proc/net/dev"
SYS_PREFIX = "/sys/class/net/"
NOHANDLER = "statistics/rx_nohandler"
OSRELEASE = "/proc/sys/kernel/osrelease"
_RELEASE = re.compile(r"(\d+)\.(\d+)")
#: rtnl_link_stats64's sysfs file -> node_exporter's netlink key (its parseNetlinkStats)
NETLINK = {
    "rx_packets": "receive_packets",
    "tx_packets": "transmit_packets",
    "rx_bytes": "receive_bytes",
    "tx_bytes": "transmit_bytes",
    "rx_errors": "receive_errors",
    "tx_errors": "transmit_errors",
    "rx_dropped": "receive_dropped",
    "tx_dropped": "transmit_dropped",
    "multicast": "multicast",
    "collisions": "collisions",
    "rx_length_errors": "receive_length_errors",
    "rx_over_errors": "receive_over_errors",
    "rx_crc_errors": "receive_crc_errors",
    "rx_frame_errors": "receive_frame_errors",
    "rx_fifo_errors": "receive_fifo_errors",
    "rx_missed_errors": "receive_missed_errors",
    "tx_aborted_errors": "transmit_aborted_errors",
    "tx_carrier_errors": "transmit_carrier_errors",
    "tx_fifo_errors": "transmit_fifo_errors",
    "tx_heartbeat_errors": "transmit_heartbeat_errors",
    "tx_window_errors": "transmit_window_errors",
    "rx_compressed": "receive_compressed",
    "tx_compressed": "transmit_compressed",
    "rx_nohandler": "receive_nohandler",
}
#: /proc/net/dev's column -> procfs' name, which ``netlink`` false with detailed metrics exports
_PROCFS = {
    "receive_errs": "receive_errors",
    "receive_drop": "receive_dropped",
    "transmit_errs": "transmit_errors",
    "transmit_drop": "transmit_dropped",
}


def _before_nohandler(sources: Sources) -> bool:
    """Whether the target's kernel predates rx_nohandler (Linux 4.6); unknown counts as not."""
    match = _RELEASE.match(sources.get(OSRELEASE, ""))
    return match is not None and (int(match.group(1)), int(match.group(2))) < (4, 6)


def nohandler(sources: Sources, names: Iterable[str]) -> dict[str, int] | None:
    """``{device: rx_nohandler}`` from sysfs for the devices ``names`` (/proc/net/dev's); ``None`` on a
    kernel without the counter (0 for all). One lookup per device: the counter changes every scrape,
    so indexing the whole answer for it (sysattrs.under) was paid every scrape."""
    counts = {}
    for device in names:
        text = sources.get(f"{SYS_PREFIX}{device}/{NOHANDLER}")
        if text is None:
            continue
        value = uint(text)
        if value is None:
            raise ValueError(f"{SYS_PREFIX}{device}/{NOHANDLER}: {text.strip()[:30]!r} is not a counter")
        counts[device] = value
    if not counts and _before_nohandler(sources):
        return None
    return counts


def netdev_families(
    netdev: dict[str, dict[str, int]], options: CollectorOptions, no_handler: dict[str, int] | None = None
) -> list[Family]:
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
                    f"node_network_{column}_total", "counter", f"Network device statistic {column}.", ("device",)
                )
            family.samples.append(((device,), float(value)))
    return list(families.values())


def detailed(netdev: dict[str, dict[str, int]], sources: Sources) -> dict[str, dict[str, int]]:
    """netlink's 24 counters per device of /proc/net/dev (netlink's set of links), from sysfs; a counter
    whose file is missing has no series (rx_nohandler: 0 on a kernel without it, as netlink)."""
    files = devices(sources, SYS_PREFIX, tuple(f"statistics/{name}" for name in NETLINK))
    zero = _before_nohandler(sources)
    out = {}
    for device in netdev:
        attrs = files.get(device, {})
        counters = {}
        for name, key in NETLINK.items():
            text = attrs.get(f"statistics/{name}")
            if text is None:
                if name == "rx_nohandler" and zero:
                    counters[key] = 0
                continue
            value = uint(text)
            if value is None:
                raise ValueError(f"{SYS_PREFIX}{device}/statistics/{name}: {text[:30]!r} is not a counter")
            counters[key] = value
        out[device] = counters
    return out


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    netdev = parse_netdev(source(sources, PATH))
    if not go_bool(options.get("netlink")):
        if go_bool(options.get("enable-detailed-metrics")):
            netdev = {
                device: {_PROCFS.get(column, column): value for column, value in counters.items()}
                for device, counters in netdev.items()
            }
        return netdev_families(netdev, options, {})
    if go_bool(options.get("enable-detailed-metrics")):
        return netdev_families(detailed(netdev, sources), options, {})
    return netdev_families(netdev, options, nohandler(sources, netdev))


COLLECTOR = Collector(
    name="netdev",
    paths=(PATH, SYS_PREFIX + "*/" + NOHANDLER, OSRELEASE),
    collect=collect,
    flags=(("device-include", ""), ("device-exclude", ""), ("enable-detailed-metrics", "false"), ("netlink", "true")),
    choices={"enable-detailed-metrics": GO_BOOLS, "netlink": GO_BOOLS},
    flag_paths={
        "enable-detailed-metrics": tuple(
            f"{SYS_PREFIX}*/statistics/{name}" for name in NETLINK if name != "rx_nohandler"
        )
    },
)
