"""node_exporter's vmstat collector: /proc/vmstat fields matching ``fields`` (upstream's default)."""

from __future__ import annotations

from exporter.collectors.base import Collector, CollectorOptions, Sources, source
from exporter.family import Family

FIELDS = "^(oom_kill|pgpg|pswp|pg.*fault).*"


def parse_vmstat(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f"malformed vmstat line: {line!r}")
        values[parts[0]] = float(parts[1])
    return values


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    wanted = options.regex("fields")
    families = []
    for name, value in parse_vmstat(source(sources, "/proc/vmstat")).items():
        if wanted is None or wanted.search(name):
            family = Family(f"node_vmstat_{name}", "untyped", f"/proc/vmstat information field {name}.")
            family.samples.append(((), value))
            families.append(family)
    return families


COLLECTOR = Collector(name="vmstat", paths=("/proc/vmstat",), collect=collect, flags=(("fields", FIELDS),))
