"""netclass: ``node_network_*`` properties from /sys/class/net/<iface>/ (node_exporter's netclass).

Each attribute is one glob; a device is every directory that sent at least one attribute. An
attribute the driver refuses (EINVAL for a down link's ``speed``) is absent, as upstream skips it.
``--collector.netclass.ignored-devices`` (default ``^$``) is an unanchored regex like Go's
``MatchString``; with ``--collector.netclass.ignore-invalid-speed`` (a Go boolean: ``true``, ``1``,
``t``...) a speed of -1 is dropped, else it is exported as upstream does (``-125000``). Upstream 1.5's
``--collector.netclass.netlink`` (off by default: netlink and ethtool, other families) is not
offered. Upstream reads *every* regular file of the directory; the files it uses are listed here,
the others it reads and ignores.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import GO_BOOLS, Collector, CollectorOptions, Sources, go_bool
from optilab.exporter.collectors.sysattrs import devices, globs, go_int
from optilab.exporter.family import Family

PREFIX = "/sys/class/net/"
_INFO = ("address", "broadcast", "duplex", "operstate", "ifalias")
#: (attribute file, metric suffix, type) in upstream's order.
_NUMBERS = (
    ("addr_assign_type", "address_assign_type", "gauge"),
    ("carrier", "carrier", "gauge"),
    ("carrier_changes", "carrier_changes_total", "counter"),
    ("carrier_up_count", "carrier_up_changes_total", "counter"),
    ("carrier_down_count", "carrier_down_changes_total", "counter"),
    ("dev_id", "device_id", "gauge"),
    ("dormant", "dormant", "gauge"),
    ("flags", "flags", "gauge"),
    ("ifindex", "iface_id", "gauge"),
    ("iflink", "iface_link", "gauge"),
    ("link_mode", "iface_link_mode", "gauge"),
    ("mtu", "mtu_bytes", "gauge"),
    ("name_assign_type", "name_assign_type", "gauge"),
    ("netdev_group", "net_dev_group", "gauge"),
    ("speed", "speed_bytes", "gauge"),
    ("tx_queue_len", "transmit_queue_length", "gauge"),
    ("type", "protocol_type", "gauge"),
)
ATTRS = _INFO + tuple(attr for attr, _, _ in _NUMBERS)


def parse(sources: Sources) -> dict[str, dict[str, str]]:
    """``{device: {attribute: value}}`` of every device that sent an attribute."""
    return devices(sources, PREFIX, ATTRS)


def build(interfaces: dict[str, dict[str, str]], options: CollectorOptions) -> list[Family]:
    ignored = options.regex("ignored-devices")
    drop_invalid_speed = go_bool(options.get("ignore-invalid-speed"))
    up = Family("node_network_up", "gauge", "Value is 1 if operstate is 'up', 0 otherwise.", ("device",))
    info = Family(
        "node_network_info",
        "gauge",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        ("device", *_INFO),
    )
    numbers = {
        attr: Family(f"node_network_{suffix}", kind, f"Network device property: {suffix}", ("device",))
        for attr, suffix, kind in _NUMBERS
    }
    parsed = 0
    for name in sorted(interfaces):
        if ignored is not None and ignored.search(name):
            continue
        attrs = interfaces[name]
        up.add((name,), 1.0 if attrs.get("operstate") == "up" else 0.0)
        info.add((name, *(attrs.get(key, "") for key in _INFO)), 1.0)
        for attr, _suffix, _kind in _NUMBERS:
            value = go_int(attrs[attr]) if attr in attrs else None
            if value is None:
                continue
            parsed += 1
            if attr == "speed":
                if value < 0 and drop_invalid_speed:
                    continue
                value = int(value * 1000 * 1000 / 8)
            numbers[attr].add((name,), value)
    if interfaces and not parsed:  # the kernel prints numbers there: this is not sysfs
        raise ValueError("no numeric attribute of /sys/class/net parses")
    return [up, info, *numbers.values()]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    interfaces = parse(sources)
    return build(interfaces, options) if interfaces else []


COLLECTOR = Collector(
    "netclass",
    globs(PREFIX + "*/", ATTRS),
    collect,
    flags=(("ignored-devices", "^$"), ("ignore-invalid-speed", "false")),
    choices={"ignore-invalid-speed": GO_BOOLS},
)
