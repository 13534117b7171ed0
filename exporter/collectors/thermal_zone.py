"""thermal_zone: ``node_thermal_zone_temp`` and ``node_cooling_device_*`` from /sys/class/thermal/
(node_exporter's thermal_zone collector). A zone needs ``type``, ``policy`` and ``temp`` like
upstream; one whose ``temp`` cannot be read (ENODATA from a sensor that is off) is skipped.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices, go_int, uint
from optilab.exporter.family import Family

PREFIX = "/sys/class/thermal/"
_ZONE = "thermal_zone"
_COOLING = "cooling_device"


def parse(sources: Sources) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int, int]]]:
    """(zones as (number, type, millidegrees), cooling devices as (number, type, cur, max))."""
    zones, cooling = [], []
    found = devices(sources, PREFIX)
    for directory, attrs in found.items():
        if directory.startswith(_ZONE) and directory[len(_ZONE) :].isdigit():
            temp = go_int(attrs.get("temp", ""))
            if "type" in attrs and "policy" in attrs and temp is not None:
                zones.append((directory[len(_ZONE) :], attrs["type"], temp))
        elif directory.startswith(_COOLING) and directory[len(_COOLING) :].isdigit():
            cur, top = uint(attrs.get("cur_state", "")), uint(attrs.get("max_state", ""))
            if "type" in attrs and cur is not None and top is not None:
                cooling.append((directory[len(_COOLING) :], attrs["type"], cur, top))
    if found and not zones and not cooling:
        raise ValueError("no thermal zone or cooling device parses")
    zones.sort(key=lambda zone: int(zone[0]))
    cooling.sort(key=lambda device: int(device[0]))
    return zones, cooling


def build(zones: list[tuple[str, str, int]], cooling: list[tuple[str, str, int, int]]) -> list[Family]:
    temp = Family("node_thermal_zone_temp", "gauge", "Zone temperature in Celsius", ("zone", "type"))
    for zone, kind, millidegrees in zones:
        temp.add((zone, kind), millidegrees / 1000.0)
    cur = Family(
        "node_cooling_device_cur_state", "gauge", "Current throttle state of the cooling device", ("name", "type")
    )
    top = Family(
        "node_cooling_device_max_state", "gauge", "Maximum throttle state of the cooling device", ("name", "type")
    )
    for name, kind, cur_state, max_state in cooling:
        cur.add((name, kind), cur_state)
        top.add((name, kind), max_state)
    return [temp, cur, top]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    zones, cooling = parse(sources)
    return build(zones, cooling) if zones or cooling else []


COLLECTOR = Collector(
    "thermal_zone",
    tuple(f"{PREFIX}{_ZONE}[0-9]*/{attr}" for attr in ("type", "policy", "temp"))
    + tuple(f"{PREFIX}{_COOLING}[0-9]*/{attr}" for attr in ("type", "cur_state", "max_state")),
    collect,
)
