"""node_exporter's interrupts collector (off by default, as upstream): /proc/interrupts per CPU.

``node_interrupts_total{cpu,type,info,devices}``. Reading the file costs the target next to nothing
(one more file in the same ``head``), but it makes CPUs × interrupt lines series per host (~60 on 2
CPUs, ~1000 on 16): enable it per department where the dashboards' interrupt panels are wanted.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family


def parse_interrupts(text: str) -> dict[str, tuple[str, str, list[str]]]:
    """{type: (info, devices, per-CPU counts)}; lines without every CPU's column (ERR, MIS) are skipped."""
    lines = text.splitlines()
    if not lines:
        raise ValueError("interrupts empty")
    cpus = len(lines[0].split())
    interrupts = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) < cpus + 2:
            continue
        name = parts[0][:-1]
        if name.isdigit():  # numbered: controller, then the devices
            info, devices = parts[cpus + 1], " ".join(parts[cpus + 2 :])
        else:
            info, devices = " ".join(parts[cpus + 1 :]), ""
        interrupts[name] = (info, devices, parts[1 : cpus + 1])
    return interrupts


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    family = Family("node_interrupts_total", "counter", "Interrupt details.", ("cpu", "type", "info", "devices"))
    for name, (info, devices, counts) in parse_interrupts(source(sources, "/proc/interrupts")).items():
        for cpu, count in enumerate(counts):
            family.samples.append(((str(cpu), name, info, devices), float(count)))
    return [family]


COLLECTOR = Collector(name="interrupts", paths=("/proc/interrupts",), collect=collect, default_enabled=False)
