"""bonding: ``node_bonding_slaves`` / ``node_bonding_active`` from /sys/class/net (node_exporter's
bonding). Upstream reads each slave's ``mii_status`` through the master's ``lower_<slave>`` link;
that link points at the slave's own directory, read here as /sys/class/net/<slave>/bonding_slave/
so the glob needs no listing of every device's directory.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices
from optilab.exporter.family import Family

MASTERS = "/sys/class/net/bonding_masters"
PREFIX = "/sys/class/net/"


def parse(sources: Sources) -> dict[str, tuple[int, int]]:
    """``{master: (slaves, active slaves)}``. A bond without slaves has an empty ``slaves`` file, which
    the target does not send: it counts 0, as upstream. A listed bond without ``bonding/mode`` (which
    is never empty) or a listed slave without ``mii_status`` is an error."""
    masters = sources.get(MASTERS)
    if masters is None:
        return {}
    attrs = devices(sources, PREFIX, ("bonding/mode", "bonding/slaves", "bonding_slave/mii_status"))
    status = {}
    for master in masters.split():
        if "bonding/mode" not in attrs.get(master, {}):  # never empty on a bond ("balance-rr 0")
            raise ValueError(f"{PREFIX}{master}/bonding/mode not readable")
        slaves = attrs.get(master, {}).get("bonding/slaves", "").split()
        active = 0
        for slave in slaves:
            state = attrs.get(slave, {}).get("bonding_slave/mii_status")
            if state is None:
                raise ValueError(f"{PREFIX}{slave}/bonding_slave/mii_status not readable")
            active += state == "up"
        status[master] = (len(slaves), active)
    return status


def build(status: dict[str, tuple[int, int]]) -> list[Family]:
    slaves = Family("node_bonding_slaves", "gauge", "Number of configured slaves per bonding interface.", ("master",))
    active = Family("node_bonding_active", "gauge", "Number of active slaves per bonding interface.", ("master",))
    for master in sorted(status):
        slaves.add((master,), status[master][0])
        active.add((master,), status[master][1])
    return [slaves, active]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    status = parse(sources)
    return build(status) if status else []


COLLECTOR = Collector(
    "bonding",
    (MASTERS, PREFIX + "*/bonding/mode", PREFIX + "*/bonding/slaves", PREFIX + "*/bonding_slave/mii_status"),
    collect,
)
