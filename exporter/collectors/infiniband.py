"""infiniband: ``node_infiniband_*`` from /sys/class/infiniband/<device>/ (node_exporter's infiniband
collector, procfs' parser rules: ``board_id`` and ``fw_ver`` required, ``hca_type`` optional; each port's
``state``/``phys_state`` as ``ID: NAME``, ``rate`` as ``<Gb/s> ...``; data counters are 32-bit words, ×4
into bytes; a counter reading ``N/A (no PMA)`` is skipped). A host without InfiniBand has no
/sys/class/infiniband: four globs that match nothing.
"""

from __future__ import annotations

import struct

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices, go_int
from optilab.exporter.family import Family

PREFIX = "/sys/class/infiniband/"
#: counters/<file> and counters_ext/<file> -> (metric suffix, multiplier, HELP)
COUNTERS: dict[str, tuple[str, int, str]] = {
    "counters_ext/port_multicast_rcv_packets": (
        "legacy_multicast_packets_received_total",
        1,
        "Number of multicast packets received",
    ),
    "counters_ext/port_multicast_xmit_packets": (
        "legacy_multicast_packets_transmitted_total",
        1,
        "Number of multicast packets transmitted",
    ),
    "counters_ext/port_rcv_data_64": (
        "legacy_data_received_bytes_total",
        4,
        "Number of data octets received on all links",
    ),
    "counters_ext/port_rcv_packets_64": (
        "legacy_packets_received_total",
        1,
        "Number of data packets received on all links",
    ),
    "counters_ext/port_unicast_rcv_packets": (
        "legacy_unicast_packets_received_total",
        1,
        "Number of unicast packets received",
    ),
    "counters_ext/port_unicast_xmit_packets": (
        "legacy_unicast_packets_transmitted_total",
        1,
        "Number of unicast packets transmitted",
    ),
    "counters_ext/port_xmit_data_64": (
        "legacy_data_transmitted_bytes_total",
        4,
        "Number of data octets transmitted on all links",
    ),
    "counters_ext/port_xmit_packets_64": (
        "legacy_packets_transmitted_total",
        1,
        "Number of data packets received on all links",
    ),
    "counters/excessive_buffer_overrun_errors": (
        "excessive_buffer_overrun_errors_total",
        1,
        "Number of times that OverrunErrors consecutive flow control "
        "update periods occurred, each having at least one overrun error.",
    ),
    "counters/link_downed": (
        "link_downed_total",
        1,
        "Number of times the link failed to recover from an error state and went down",
    ),
    "counters/link_error_recovery": (
        "link_error_recovery_total",
        1,
        "Number of times the link successfully recovered from an error state",
    ),
    "counters/local_link_integrity_errors": (
        "local_link_integrity_errors_total",
        1,
        "Number of times that the count of local physical errors exceeded the threshold specified by LocalPhyErrors.",
    ),
    "counters/multicast_rcv_packets": (
        "multicast_packets_received_total",
        1,
        "Number of multicast packets received (including errors)",
    ),
    "counters/multicast_xmit_packets": (
        "multicast_packets_transmitted_total",
        1,
        "Number of multicast packets transmitted (including errors)",
    ),
    "counters/port_rcv_constraint_errors": (
        "port_constraint_errors_received_total",
        1,
        "Number of packets received on the switch physical port that are discarded",
    ),
    "counters/port_xmit_constraint_errors": (
        "port_constraint_errors_transmitted_total",
        1,
        "Number of packets not transmitted from the switch physical port",
    ),
    "counters/port_rcv_data": ("port_data_received_bytes_total", 4, "Number of data octets received on all links"),
    "counters/port_xmit_data": (
        "port_data_transmitted_bytes_total",
        4,
        "Number of data octets transmitted on all links",
    ),
    "counters/port_rcv_discards": (
        "port_discards_received_total",
        1,
        "Number of inbound packets discarded by the port because the port is down or congested",
    ),
    "counters/port_xmit_discards": (
        "port_discards_transmitted_total",
        1,
        "Number of outbound packets discarded by the port because the port is down or congested",
    ),
    "counters/port_rcv_errors": (
        "port_errors_received_total",
        1,
        "Number of packets containing an error that were received on this port",
    ),
    "counters/port_rcv_packets": (
        "port_packets_received_total",
        1,
        "Number of packets received on all VLs by this port (including errors)",
    ),
    "counters/port_xmit_packets": (
        "port_packets_transmitted_total",
        1,
        "Number of packets transmitted on all VLs from this port (including errors)",
    ),
    "counters/port_xmit_wait": (
        "port_transmit_wait_total",
        1,
        "Number of ticks during which the port had data to transmit but no data was sent during the entire tick",
    ),
    "counters/unicast_rcv_packets": (
        "unicast_packets_received_total",
        1,
        "Number of unicast packets received (including errors)",
    ),
    "counters/unicast_xmit_packets": (
        "unicast_packets_transmitted_total",
        1,
        "Number of unicast packets transmitted (including errors)",
    ),
    "counters/port_rcv_remote_physical_errors": (
        "port_receive_remote_physical_errors_total",
        1,
        "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the port.",
    ),
    "counters/port_rcv_switch_relay_errors": (
        "port_receive_switch_relay_errors_total",
        1,
        "Number of packets that could not be forwarded by the switch.",
    ),
    "counters/symbol_error": (
        "symbol_error_total",
        1,
        "Number of minor link errors detected on one or more physical lanes.",
    ),
    "counters/VL15_dropped": (
        "vl15_dropped_total",
        1,
        "Number of incoming VL15 packets dropped due to resource limitations.",
    ),
}
STATE_HELP = "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: act defer)"
PHYS_HELP = (
    "Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: disable, 4: shift, "
    "5: link up, 6: link error recover, 7: phytest)"
)


def state_id(text: str) -> int:
    parts = text.split(":")
    if len(parts) != 2 or not parts[0].strip().isdigit():
        raise ValueError(f"failed to split {text.strip()!r} into 'ID: NAME'")
    return int(parts[0].strip())


def rate_bytes(text: str) -> int:
    """``100 Gb/sec (4X EDR)`` -> 12500000000, as procfs (float32 parse, × 125000000, truncated)."""
    parts = text.split(" ", 1)
    if len(parts) != 2:
        raise ValueError(f"failed to split {text!r}")
    try:
        gbits = struct.unpack("f", struct.pack("f", float(parts[0].strip())))[0]
    except (ValueError, OverflowError):
        raise ValueError(f"failed to convert {parts[0]!r} into uint") from None
    return int(gbits * 125000000)


def parse(sources: Sources) -> list[tuple[dict[str, str], dict[str, dict[str, str]]]]:
    """[(device attributes incl. name, {port: files})] per device, in name order."""
    out = []
    for name, files in sorted(devices(sources, PREFIX).items()):
        attrs: dict[str, str] = {key: files[key] for key in ("board_id", "fw_ver", "hca_type") if key in files}
        for key in ("board_id", "fw_ver"):
            if key not in attrs:
                raise ValueError(f"failed to read file {PREFIX}{name}/{key}")
        ports: dict[str, dict[str, str]] = {}
        for path, text in files.items():
            head, sep, rest = path.partition("/")
            if head == "ports" and sep:
                port, _, file = rest.partition("/")
                if not port.isdigit():
                    raise ValueError(f"failed to convert {port!r} into uint")
                ports.setdefault(port, {})[file] = text
        device: dict[str, str] = {"name": name, **attrs}
        out.append((device, ports))
    return out


def build(parsed: list[tuple[dict[str, str], dict[str, dict[str, str]]]]) -> list[Family]:
    info = Family(
        "node_infiniband_info",
        "gauge",
        "Non-numeric data from /sys/class/infiniband/<device>, value is always 1.",
        ("device", "board_id", "firmware_version", "hca_type"),
    )
    labels = ("device", "port")
    state = Family("node_infiniband_state_id", "gauge", STATE_HELP, labels)
    phys = Family("node_infiniband_physical_state_id", "gauge", PHYS_HELP, labels)
    rate = Family("node_infiniband_rate_bytes_per_second", "gauge", "Maximum signal transfer rate", labels)
    counters = {
        file: Family(f"node_infiniband_{suffix}", "counter", help_text, labels)
        for file, (suffix, _, help_text) in COUNTERS.items()
    }
    for attrs, ports in parsed:
        device = attrs["name"]
        info.add((device, attrs["board_id"], attrs["fw_ver"], attrs.get("hca_type", "")), 1.0)
        for port in sorted(ports, key=int):
            files = ports[port]
            for key in ("state", "phys_state", "rate"):
                if key not in files:
                    raise ValueError(f"{PREFIX}{device}/ports/{port}/{key} not readable")
            key_labels = (device, str(int(port)))
            state.add(key_labels, state_id(files["state"]))
            phys.add(key_labels, state_id(files["phys_state"]))
            rate.add(key_labels, rate_bytes(files["rate"]))
            for file, (_, multiplier, _) in COUNTERS.items():
                if file not in files:
                    continue
                value = go_int(files[file])
                if value is None or value < 0:
                    if "N/A (no PMA)" in files[file]:
                        continue
                    raise ValueError(f"{PREFIX}{device}/ports/{port}/{file}: {files[file][:30]!r}")
                counters[file].add(key_labels, value * multiplier)
    return [info, state, phys, rate, *counters.values()]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    parsed = parse(sources)
    return build(parsed) if parsed else []


COLLECTOR = Collector(
    "infiniband",
    (
        PREFIX + "*/board_id",
        PREFIX + "*/fw_ver",
        PREFIX + "*/hca_type",
        PREFIX + "*/ports/*/state",
        PREFIX + "*/ports/*/phys_state",
        PREFIX + "*/ports/*/rate",
        PREFIX + "*/ports/*/counters/*",
        PREFIX + "*/ports/*/counters_ext/*",
    ),
    collect,
)
