"""node_exporter's pressure collector: PSI totals of /proc/pressure/{cpu,io,memory}, in seconds."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family, counter

_SPECS = (
    (
        "cpu",
        "some",
        "node_pressure_cpu_waiting_seconds_total",
        "Total time in seconds that processes have waited for CPU time",
    ),
    (
        "io",
        "some",
        "node_pressure_io_waiting_seconds_total",
        "Total time in seconds that processes have waited due to IO congestion",
    ),
    (
        "io",
        "full",
        "node_pressure_io_stalled_seconds_total",
        "Total time in seconds no process could make progress due to IO congestion",
    ),
    (
        "memory",
        "some",
        "node_pressure_memory_waiting_seconds_total",
        "Total time in seconds that processes have waited for memory",
    ),
    (
        "memory",
        "full",
        "node_pressure_memory_stalled_seconds_total",
        "Total time in seconds no process could make progress due to memory congestion",
    ),
)


def parse_psi(text: str) -> dict[str, int]:
    """``some avg10=0.00 avg60=0.00 avg300=0.00 total=123`` lines -> {"some": total µs, "full": ...}."""
    totals = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        values = dict(field.split("=", 1) for field in fields)
        if "total" not in values:
            raise ValueError(f"PSI line without total: {line!r}")
        totals[kind] = int(values["total"])
    return totals


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    paths = {resource: f"/proc/pressure/{resource}" for resource in ("cpu", "io", "memory")}
    if not all(path in sources for path in paths.values()):
        return []  # kernel without PSI (or psi=0): nothing to report
    parsed = {resource: parse_psi(sources[path]) for resource, path in paths.items()}
    return [
        counter(name, help_text, parsed[resource][kind] / 1e6)
        for resource, kind, name, help_text in _SPECS
        if kind in parsed[resource]
    ]


COLLECTOR = Collector(
    name="pressure", paths=("/proc/pressure/cpu", "/proc/pressure/io", "/proc/pressure/memory"), collect=collect
)
