"""cpufreq: ``node_cpu_frequency_*`` and ``node_cpu_scaling_frequency_*`` from
/sys/devices/system/cpu/cpuN/cpufreq/ (node_exporter 1.5's cpufreq collector; kHz -> Hz).

``cpuinfo_cur_freq`` is readable by root only on most kernels: a non-root monitoring account (and
node_exporter run as non-root) has no ``node_cpu_frequency_hertz``; the scaling values remain.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices, globs, uint
from optilab.exporter.family import Family

PREFIX = "/sys/devices/system/cpu/cpu"
#: (file under cpufreq/, metric name, HELP) in upstream's order.
_FILES = (
    ("cpuinfo_cur_freq", "node_cpu_frequency_hertz", "Current cpu thread frequency in hertz."),
    ("cpuinfo_min_freq", "node_cpu_frequency_min_hertz", "Minimum cpu thread frequency in hertz."),
    ("cpuinfo_max_freq", "node_cpu_frequency_max_hertz", "Maximum cpu thread frequency in hertz."),
    ("scaling_cur_freq", "node_cpu_scaling_frequency_hertz", "Current scaled CPU thread frequency in hertz."),
    ("scaling_min_freq", "node_cpu_scaling_frequency_min_hertz", "Minimum scaled CPU thread frequency in hertz."),
    ("scaling_max_freq", "node_cpu_scaling_frequency_max_hertz", "Maximum scaled CPU thread frequency in hertz."),
)
ATTRS = tuple(f"cpufreq/{name}" for name, _, _ in _FILES)


def parse(sources: Sources) -> dict[str, dict[str, int]]:
    """``{cpu number: {file: kHz}}``; a value that is not an unsigned number is left out."""
    cpus: dict[str, dict[str, int]] = {}
    found = devices(sources, PREFIX, ATTRS)
    for cpu, attrs in found.items():
        if not cpu.isdigit():
            continue
        values = {attr.removeprefix("cpufreq/"): uint(text) for attr, text in attrs.items()}
        cpus[cpu] = {name: value for name, value in values.items() if value is not None}
    if found and not any(cpus.values()):
        raise ValueError("no cpufreq value parses")
    return cpus


def build(cpus: dict[str, dict[str, int]]) -> list[Family]:
    families = []
    for file, name, help_text in _FILES:
        family = Family(name, "gauge", help_text, ("cpu",))
        for cpu in sorted(cpus, key=int):
            if file in cpus[cpu]:
                family.add((cpu,), cpus[cpu][file] * 1000.0)
        families.append(family)
    return families


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    cpus = parse(sources)
    return build(cpus) if cpus else []


COLLECTOR = Collector("cpufreq", globs(PREFIX + "[0-9]*/", ATTRS), collect)
