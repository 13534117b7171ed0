"""dmi: ``node_dmi_info`` from /sys/class/dmi/id/ (node_exporter's dmi collector).

Serial numbers and the product UUID are readable by root only: a non-root account (like a
non-root node_exporter) gets the info without those labels.
"""

from __future__ import annotations

import re

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family

DIRECTORY = "/sys/class/dmi/id/"
#: label -> file
FIELDS = {
    "bios_date": "bios_date",
    "bios_release": "bios_release",
    "bios_vendor": "bios_vendor",
    "bios_version": "bios_version",
    "board_asset_tag": "board_asset_tag",
    "board_name": "board_name",
    "board_serial": "board_serial",
    "board_vendor": "board_vendor",
    "board_version": "board_version",
    "chassis_asset_tag": "chassis_asset_tag",
    "chassis_serial": "chassis_serial",
    "chassis_vendor": "chassis_vendor",
    "chassis_version": "chassis_version",
    "product_family": "product_family",
    "product_name": "product_name",
    "product_serial": "product_serial",
    "product_sku": "product_sku",
    "product_uuid": "product_uuid",
    "product_version": "product_version",
    "system_vendor": "sys_vendor",
}
HELP = (
    "A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, bios_version, "
    "board_asset_tag, board_name, board_serial, board_vendor, board_version, chassis_asset_tag, "
    "chassis_serial, chassis_vendor, chassis_version, product_family, product_name, product_serial, "
    "product_sku, product_uuid, product_version, system_vendor if provided by DMI."
)


def parse(sources: Sources) -> dict[str, str]:
    """``{label: value}`` for each DMI file the target sent; ``ValueError`` when the BIOS date is not
    the MM/DD/YYYY the DMI standard prescribes (the answer is not /sys)."""
    info = {label: sources[DIRECTORY + file].strip() for label, file in FIELDS.items() if DIRECTORY + file in sources}
    if "bios_date" in info and not re.match(r"^\d{2}/\d{2}/\d{4}$", info["bios_date"]):
        raise ValueError(f"bios_date {info['bios_date'][:20]!r} is not MM/DD/YYYY")
    return info


def build(info: dict[str, str]) -> list[Family]:
    family = Family("node_dmi_info", "gauge", HELP, tuple(info))
    family.add(tuple(info.values()), 1.0)
    return [family]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    info = parse(sources)
    return build(info) if info else []


COLLECTOR = Collector("dmi", tuple(DIRECTORY + file for file in FIELDS.values()), collect)
