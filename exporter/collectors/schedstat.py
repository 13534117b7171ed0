"""node_exporter's schedstat collector: per-CPU run and wait time from /proc/schedstat."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    text = sources.get("/proc/schedstat")
    if text is None:
        return []  # kernel built without CONFIG_SCHEDSTATS
    running = Family(
        "node_schedstat_running_seconds_total", "counter", "Number of seconds CPU spent running a process.", ("cpu",)
    )
    waiting = Family(
        "node_schedstat_waiting_seconds_total",
        "counter",
        "Number of seconds spent by processing waiting for this CPU.",
        ("cpu",),
    )
    slices = Family("node_schedstat_timeslices_total", "counter", "Number of timeslices executed by CPU.", ("cpu",))
    for line in text.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("cpu") or not fields[0][3:].isdigit():
            continue
        if len(fields) < 10:
            raise ValueError(f"schedstat cpu line with {len(fields)} fields")
        cpu = (fields[0][3:],)
        running.samples.append((cpu, int(fields[7]) / 1e9))
        waiting.samples.append((cpu, int(fields[8]) / 1e9))
        slices.samples.append((cpu, float(fields[9])))
    if not running.samples:
        raise ValueError("no cpuN lines in /proc/schedstat")
    return [running, waiting, slices]


COLLECTOR = Collector(name="schedstat", paths=("/proc/schedstat",), collect=collect)
