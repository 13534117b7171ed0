"""node_exporter's udp_queues collector: bytes queued in UDP sockets, from /proc/net/udp{,6}."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family


def queue_sums(text: str) -> tuple[int, int]:
    """(tx, rx) summed over the sockets; column 5 is ``tx_queue:rx_queue`` in hex."""
    tx = rx = 0
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or ":" not in fields[4]:
            raise ValueError(f"malformed udp line: {line!r}")
        tx_hex, rx_hex = fields[4].split(":", 1)
        tx, rx = tx + int(tx_hex, 16), rx + int(rx_hex, 16)
    return tx, rx


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    family = Family(
        "node_udp_queues",
        "gauge",
        "Number of allocated memory in the kernel for UDP datagrams in bytes.",
        ("queue", "ip"),
    )
    for path, ip in (("/proc/net/udp", "v4"), ("/proc/net/udp6", "v6")):
        if path in sources:
            tx, rx = queue_sums(sources[path])
            family.add(("tx", ip), tx)
            family.add(("rx", ip), rx)
    return [family] if family.samples else []


COLLECTOR = Collector(name="udp_queues", paths=("/proc/net/udp", "/proc/net/udp6"), collect=collect)
