"""node_exporter's vmstat collector: /proc/vmstat fields matching ``fields`` (upstream's default)."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family

FIELDS = "^(oom_kill|pgpg|pswp|pg.*fault).*"


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    text = source(sources, "/proc/vmstat")
    fields = text.split()
    if len(fields) != 2 * (text.count("\n") + (not text.endswith("\n"))):  # one "name value" per line
        raise ValueError("/proc/vmstat lines are not 'name value'")
    names = tuple(fields[0::2])
    families = []
    for index in options.selected("fields", names):
        family = Family(f"node_vmstat_{names[index]}", "untyped", f"/proc/vmstat information field {names[index]}.")
        family.samples.append(((), float(fields[2 * index + 1])))
        families.append(family)
    return families


COLLECTOR = Collector(name="vmstat", paths=("/proc/vmstat",), collect=collect, flags=(("fields", FIELDS),))
