"""node_exporter's stat collector: boot time, context switches, interrupts, forks, process counts."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family, counter, gauge
from optilab.exporter.parsers_proc import Stat, parse_stat_cached


def stat_families(stat: Stat) -> list[Family]:
    specs = (
        (counter, "node_intr_total", "Total number of interrupts serviced.", stat.interrupts),
        (counter, "node_context_switches_total", "Total number of context switches.", stat.context_switches),
        (counter, "node_forks_total", "Total number of forks.", stat.forks),
        (gauge, "node_boot_time_seconds", "Node boot time, in unixtime.", stat.boot_time),
        (gauge, "node_procs_running", "Number of processes in runnable state.", stat.procs_running),
        (gauge, "node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", stat.procs_blocked),
    )
    return [build(name, help_text, value) for build, name, help_text, value in specs if value is not None]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    return stat_families(parse_stat_cached(source(sources, "/proc/stat")))


COLLECTOR = Collector(name="stat", paths=("/proc/stat",), collect=collect)
