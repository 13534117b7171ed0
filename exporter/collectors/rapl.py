"""rapl: ``node_rapl_<zone>_joules_total`` from /sys/class/powercap/<zone>/ (node_exporter's rapl).

A zone is a directory with a ``name``; ``package-0`` is zone ``package`` index 0, a name without
an index takes the count of earlier zones of that name, as upstream's procfs does. Upstream fails
the collector when ``max_energy_range_uj`` is unreadable; it is read here for the same check.
``energy_uj`` is root-only on kernels since 5.10 (CVE-2020-8694): a non-root account sees nothing,
like a non-root node_exporter. ``--collector.rapl.enable-zone-label`` gives one
``node_rapl_joules_total{index,path,rapl_zone}`` family instead.
"""

from __future__ import annotations

import re

from optilab.exporter.collectors.base import GO_BOOLS, Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices, uint
from optilab.exporter.family import Family

PREFIX = "/sys/class/powercap/"
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def parse(sources: Sources) -> list[tuple[str, int, str, int]]:
    """(name, index, path, microjoules) per zone, in directory order."""
    zones = []
    used: dict[str, int] = {}
    for directory, attrs in sorted(devices(sources, PREFIX).items()):
        if "name" not in attrs:
            continue
        name = attrs["name"]
        base, dash, suffix = name.partition("-")
        if dash and suffix.isdigit() and "-" not in suffix:
            index, name = int(suffix), base
        else:
            index = used.get(name, 0)
        if uint(attrs.get("max_energy_range_uj", "")) is None:
            raise ValueError(f"{PREFIX}{directory}/max_energy_range_uj unreadable")
        used[name] = index + 1
        energy = uint(attrs.get("energy_uj", ""))
        if energy is not None:
            zones.append((name, index, PREFIX + directory, energy))
    return zones


def build(zones: list[tuple[str, int, str, int]], zone_label: bool) -> list[Family]:
    if zone_label:
        family = Family(
            "node_rapl_joules_total", "counter", "Current RAPL value in joules", ("index", "path", "rapl_zone")
        )
        for name, index, path, energy in zones:
            family.add((str(index), path, name), energy / 1e6)
        return [family]
    families: dict[str, Family] = {}
    for name, index, path, energy in zones:
        metric = f"node_rapl_{_UNSAFE.sub('_', name)}_joules_total"
        family = families.setdefault(
            metric, Family(metric, "counter", f"Current RAPL {name} value in joules", ("index", "path"))
        )
        family.add((str(index), path), energy / 1e6)
    return list(families.values())


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    zones = parse(sources)
    return build(zones, options.get("enable-zone-label").lower() in ("1", "true")) if zones else []


COLLECTOR = Collector(
    "rapl",
    tuple(f"{PREFIX}*/{attr}" for attr in ("name", "max_energy_range_uj", "energy_uj")),
    collect,
    flags=(("enable-zone-label", "false"),),
    choices={"enable-zone-label": GO_BOOLS},  # a kingpin Bool(): anything else is a usage error upstream
)
