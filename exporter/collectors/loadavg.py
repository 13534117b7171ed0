"""node_exporter's loadavg collector: ``node_load1``, ``node_load5``, ``node_load15``."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family, gauge
from optilab.exporter.parsers_proc import parse_loadavg


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    load = parse_loadavg(source(sources, "/proc/loadavg"))
    return [
        gauge(f"node_load{minutes}", f"{minutes}m load average.", value)
        for minutes, value in ((1, load.load1), (5, load.load5), (15, load.load15))
    ]


COLLECTOR = Collector(name="loadavg", paths=("/proc/loadavg",), collect=collect)
