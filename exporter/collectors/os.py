"""node_exporter's os collector: ``node_os_info`` and ``node_os_version`` from os-release."""

from __future__ import annotations

import re

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family
from optilab.exporter.parsers_host import parse_osrelease

PATHS = ("/etc/os-release", "/usr/lib/os-release")
#: node_os_info's label names in node_exporter 1.5, each from the os-release key of the same name.
INFO_LABELS = (
    "build_id",
    "id",
    "id_like",
    "image_id",
    "image_version",
    "name",
    "pretty_name",
    "variant",
    "variant_id",
    "version",
    "version_codename",
    "version_id",
)
_VERSION = re.compile(r"^[0-9]+\.?[0-9]*")


def os_families(release: dict[str, str]) -> list[Family]:
    info = Family(
        "node_os_info",
        "gauge",
        "A metric with a constant '1' value labeled by " + ", ".join(INFO_LABELS) + ".",
        INFO_LABELS,
    )
    info.add([release.get(label.upper(), "") for label in INFO_LABELS], 1.0)
    families = [info]
    version = _VERSION.match(release.get("VERSION_ID", ""))
    if version:
        family = Family(
            "node_os_version",
            "gauge",
            "Metric containing the major.minor part of the OS version.",
            ("id", "id_like", "name"),
        )
        family.add([release.get(key, "") for key in ("ID", "ID_LIKE", "NAME")], float(version.group()))
        families.append(family)
    return families


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    text = next((sources[path] for path in PATHS if path in sources), None)
    if text is None:
        raise ValueError("neither /etc/os-release nor /usr/lib/os-release is readable")
    return os_families(parse_osrelease(text))


COLLECTOR = Collector(name="os", paths=PATHS, collect=collect)
