"""nvme: ``node_nvme_info`` from /sys/class/nvme/<device>/ (node_exporter's nvme collector)."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices
from optilab.exporter.family import Family

PREFIX = "/sys/class/nvme/"
_FILES = ("firmware_rev", "model", "serial", "state")


#: controller states the kernel prints (drivers/nvme/host/core.c)
STATES = ("new", "live", "resetting", "connecting", "deleting", "deleting (no IO)", "dead", "unknown")


def parse(sources: Sources) -> dict[str, dict[str, str]]:
    """``{controller: {file: value}}``; ``ValueError`` when no controller is in a state the kernel prints."""
    controllers = devices(sources, PREFIX, _FILES)
    if controllers and not any(attrs.get("state") in STATES for attrs in controllers.values()):
        raise ValueError("no NVMe controller in a known state")
    return controllers


def build(controllers: dict[str, dict[str, str]]) -> list[Family]:
    info = Family(
        "node_nvme_info",
        "gauge",
        "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
        ("device", "firmware_revision", "model", "serial", "state"),
    )
    for name in sorted(controllers):
        attrs = controllers[name]
        info.add((name, *(attrs.get(file, "") for file in _FILES)), 1.0)
    return [info]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    controllers = parse(sources)
    return build(controllers) if controllers else []


COLLECTOR = Collector("nvme", tuple(f"{PREFIX}*/{file}" for file in _FILES), collect)
