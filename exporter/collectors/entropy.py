"""node_exporter's entropy collector: available entropy and pool size of the kernel's random pool."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family, gauge

RANDOM = "/proc/sys/kernel/random/"


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    return [
        gauge(
            "node_entropy_available_bits", "Bits of available entropy.", int(source(sources, RANDOM + "entropy_avail"))
        ),
        gauge("node_entropy_pool_size_bits", "Bits of entropy pool.", int(source(sources, RANDOM + "poolsize"))),
    ]


COLLECTOR = Collector(name="entropy", paths=(RANDOM + "entropy_avail", RANDOM + "poolsize"), collect=collect)
