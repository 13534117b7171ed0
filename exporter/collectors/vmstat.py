"""node_exporter's vmstat collector: /proc/vmstat fields matching ``fields`` (upstream's default)."""

from __future__ import annotations

from exporter.collectors.base import Collector, CollectorOptions, Sources, source
from exporter.family import Family

FIELDS = "^(oom_kill|pgpg|pswp|pg.*fault).*"


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    families = []
    for line in source(sources, "/proc/vmstat").splitlines():
        name, _, value = line.partition(" ")
        if not value or " " in value:
            raise ValueError(f"malformed vmstat line: {line!r}")
        if options.search("fields", name) is False:
            continue
        family = Family(f"node_vmstat_{name}", "untyped", f"/proc/vmstat information field {name}.")
        family.samples.append(((), float(value)))
        families.append(family)
    return families


COLLECTOR = Collector(name="vmstat", paths=("/proc/vmstat",), collect=collect, flags=(("fields", FIELDS),))
