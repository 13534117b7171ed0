"""node_exporter's softnet collector: per-CPU packet processing counters of /proc/net/softnet_stat."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    processed = Family("node_softnet_processed_total", "counter", "Number of processed packets", ("cpu",))
    dropped = Family("node_softnet_dropped_total", "counter", "Number of dropped packets", ("cpu",))
    squeezed = Family(
        "node_softnet_times_squeezed_total", "counter", "Number of times processing packets ran out of quota", ("cpu",)
    )
    for index, line in enumerate(source(sources, "/proc/net/softnet_stat").splitlines()):
        fields = line.split()
        if len(fields) < 3:
            raise ValueError(f"softnet_stat line with {len(fields)} fields")
        cpu = (str(index),)  # the row number, as node_exporter 1.5 labels it
        processed.samples.append((cpu, float(int(fields[0], 16))))
        dropped.samples.append((cpu, float(int(fields[1], 16))))
        squeezed.samples.append((cpu, float(int(fields[2], 16))))
    return [processed, dropped, squeezed]


COLLECTOR = Collector(name="softnet", paths=("/proc/net/softnet_stat",), collect=collect)
