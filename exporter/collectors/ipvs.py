"""ipvs: ``node_ipvs_*`` from /proc/net/ip_vs_stats and /proc/net/ip_vs (node_exporter's ipvs collector,
procfs' parser rules: hexadecimal totals, ``HEXIP:HEXPORT`` or ``[IPv6]:HEXPORT`` addresses).
Backends with the same values of the chosen labels are summed, as upstream does;
``--collector.ipvs.backend-labels`` picks those labels (default: all six). Only hosts that load the
ip_vs module have the files.
"""

from __future__ import annotations

import ipaddress

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family

STATS, BACKENDS = "/proc/net/ip_vs_stats", "/proc/net/ip_vs"
LABELS = ("local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark")
_TOTALS = (
    ("connections_total", "The total number of connections made."),
    ("incoming_packets_total", "The total number of incoming packets."),
    ("outgoing_packets_total", "The total number of outgoing packets."),
    ("incoming_bytes_total", "The total amount of incoming data."),
    ("outgoing_bytes_total", "The total amount of outgoing data."),
)


def parse_stats(text: str) -> list[int]:
    lines = text.split("\n", 3)
    if len(lines) != 4:
        raise ValueError("ip_vs_stats corrupt: too short")
    fields = lines[2].split()
    if len(fields) != 5:
        raise ValueError("ip_vs_stats corrupt: unexpected number of fields")
    return [int(field, 16) for field in fields]


def address(text: str) -> tuple[str, int]:
    """``7F000101:0050`` -> ("127.0.1.1", 80); ``[2001:0db8:…]:0050`` -> ("2001:db8::…", 80)."""
    if len(text) == 13:
        ip = str(ipaddress.IPv4Address(bytes.fromhex(text[:8])))
    elif len(text) == 46:
        ip = str(ipaddress.IPv6Address(text[1:40]))
    else:
        raise ValueError(f"unexpected IP:Port: {text}")
    return ip, int(text[-4:], 16)


Backend = tuple[dict[str, str], int, int, int]  # (labels, weight, active, inactive)


def parse_backends(text: str) -> list[Backend]:
    backends: list[Backend] = []
    proto, mark, local, port = "", "", "", 0
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] in ("IP", "Prot") or (len(fields) > 1 and fields[1] == "RemoteAddress:Port"):
            continue
        if fields[0] in ("TCP", "UDP") and len(fields) >= 2:
            proto, mark = fields[0], ""
            local, port = address(fields[1])
        elif fields[0] == "FWM" and len(fields) >= 2:
            proto, mark, local, port = "FWM", fields[1], "", 0
        elif fields[0] == "->" and len(fields) >= 6:
            remote, remote_port = address(fields[1])
            weight, active, inactive = (int(value) for value in fields[3:6])
            backends.append(
                (
                    {
                        "local_address": local,
                        "local_port": str(port),
                        "remote_address": remote,
                        "remote_port": str(remote_port),
                        "proto": proto,
                        "local_mark": mark,
                    },
                    weight,
                    active,
                    inactive,
                )
            )
    return backends


def build(totals: list[int], backends: list[Backend], labels: tuple[str, ...]) -> list[Family]:
    families = []
    for (suffix, help_text), value in zip(_TOTALS, totals, strict=True):
        family = Family(f"node_ipvs_{suffix}", "counter", help_text)
        family.add((), value)
        families.append(family)
    sums: dict[tuple[str, ...], list[int]] = {}
    for values, backend_weight, backend_active, backend_inactive in backends:
        entry = sums.setdefault(tuple(values[label] for label in labels), [0, 0, 0])
        entry[0] += backend_active
        entry[1] += backend_inactive
        entry[2] += backend_weight
    active = Family(
        "node_ipvs_backend_connections_active",
        "gauge",
        "The current active connections by local and remote address.",
        labels,
    )
    inactive = Family(
        "node_ipvs_backend_connections_inactive",
        "gauge",
        "The current inactive connections by local and remote address.",
        labels,
    )
    weight = Family(
        "node_ipvs_backend_weight", "gauge", "The current backend weight by local and remote address.", labels
    )
    for key, (act, inact, wgt) in sums.items():
        active.add(key, act)
        inactive.add(key, inact)
        weight.add(key, wgt)
    return [*families, active, inactive, weight]


def backend_labels(value: str) -> tuple[str, ...]:
    chosen = {label for label in value.split(",") if label}
    unknown = sorted(chosen - set(LABELS))
    if unknown:
        raise ValueError(f"unknown IPVS backend labels: {', '.join(unknown)!r}")
    return tuple(label for label in LABELS if label in chosen)


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    if STATS not in sources:
        return []
    backends = parse_backends(sources.get(BACKENDS, ""))
    return build(parse_stats(sources[STATS]), backends, backend_labels(options.get("backend-labels")))


COLLECTOR = Collector("ipvs", (STATS, BACKENDS), collect, flags=(("backend-labels", ",".join(LABELS)),))
