"""powersupplyclass: ``node_power_supply_*`` from /sys/class/power_supply/<supply>/ (node_exporter's
powersupplyclass; sysfs' µA, µV, µWh, µW -> A, V, Wh, W; tenths of °C -> °C).

``node_power_supply_info`` carries only the text attributes a supply has, so its label set differs
between supplies (a battery has ``technology``, mains has not), exactly as upstream's.
``--collector.powersupply.ignored-supplies`` (default ``^$``) is an unanchored regex.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices, go_int
from optilab.exporter.family import Family

PREFIX = "/sys/class/power_supply/"
#: sysfs file -> (metric suffix, scale), in upstream's three groups.
NUMBERS: dict[str, tuple[str, float]] = {
    "authentic": ("authentic", 1.0),
    "calibrate": ("calibrate", 1.0),
    "capacity": ("capacity", 1.0),
    "capacity_alert_max": ("capacity_alert_max", 1.0),
    "capacity_alert_min": ("capacity_alert_min", 1.0),
    "cycle_count": ("cyclecount", 1.0),
    "online": ("online", 1.0),
    "present": ("present", 1.0),
    "time_to_empty_now": ("time_to_empty_seconds", 1.0),
    "time_to_full_now": ("time_to_full_seconds", 1.0),
    **{
        file: (suffix, 1e-6)
        for file, suffix in (
            ("current_boot", "current_boot"),
            ("current_max", "current_max"),
            ("current_now", "current_ampere"),
            ("energy_empty", "energy_empty"),
            ("energy_empty_design", "energy_empty_design"),
            ("energy_full", "energy_full"),
            ("energy_full_design", "energy_full_design"),
            ("energy_now", "energy_watthour"),
            ("voltage_boot", "voltage_boot"),
            ("voltage_max", "voltage_max"),
            ("voltage_max_design", "voltage_max_design"),
            ("voltage_min", "voltage_min"),
            ("voltage_min_design", "voltage_min_design"),
            ("voltage_now", "voltage_volt"),
            ("voltage_ocv", "voltage_ocv"),
            ("charge_control_limit", "charge_control_limit"),
            ("charge_control_limit_max", "charge_control_limit_max"),
            ("charge_counter", "charge_counter"),
            ("charge_empty", "charge_empty"),
            ("charge_empty_design", "charge_empty_design"),
            ("charge_full", "charge_full"),
            ("charge_full_design", "charge_full_design"),
            ("charge_now", "charge_ampere"),
            ("charge_term_current", "charge_term_current"),
            ("constant_charge_current", "constant_charge_current"),
            ("constant_charge_current_max", "constant_charge_current_max"),
            ("constant_charge_voltage", "constant_charge_voltage"),
            ("constant_charge_voltage_max", "constant_charge_voltage_max"),
            ("precharge_current", "precharge_current"),
            ("input_current_limit", "input_current_limit"),
            ("power_now", "power_watt"),
        )
    },
    **{
        file: (f"{file}_celsius", 0.1)
        for file in (
            "temp",
            "temp_alert_max",
            "temp_alert_min",
            "temp_ambient",
            "temp_ambient_max",
            "temp_ambient_min",
            "temp_max",
            "temp_min",
        )
    },
}
TEXTS = (
    "capacity_level",
    "charge_type",
    "health",
    "manufacturer",
    "model_name",
    "serial_number",
    "status",
    "technology",
    "type",
    "usb_type",
    "scope",
)


#: the kernel's power_supply types (include/linux/power_supply.h)
TYPES = ("Unknown", "Battery", "UPS", "Mains", "USB", "Wireless")


def parse(sources: Sources) -> dict[str, dict[str, str]]:
    """``{supply: {file: value}}``; ``ValueError`` when no supply has a type the kernel prints."""
    supplies = devices(sources, PREFIX, (*NUMBERS, *TEXTS))
    if supplies and not any(attrs.get("type") in TYPES for attrs in supplies.values()):
        raise ValueError("no power supply of a known type")
    return supplies


def build(supplies: dict[str, dict[str, str]], options: CollectorOptions) -> list[Family]:
    ignored = options.regex("ignored-supplies")
    families: dict[str, Family] = {}
    infos = []
    for supply in sorted(supplies):
        if ignored is not None and ignored.search(supply):
            continue
        attrs = supplies[supply]
        for file, (suffix, scale) in NUMBERS.items():
            value = go_int(attrs[file]) if file in attrs else None
            if value is None:
                continue
            name = f"node_power_supply_{suffix}"
            family = families.setdefault(
                name,
                Family(name, "gauge", f"{suffix} value of /sys/class/power_supply/<power_supply>.", ("power_supply",)),
            )
            family.add((supply,), value * scale)
        keys = ["power_supply", *(key for key in TEXTS if attrs.get(key))]
        info = Family("node_power_supply_info", "gauge", "info of /sys/class/power_supply/<power_supply>.", tuple(keys))
        info.add([supply, *(attrs[key] for key in keys[1:])], 1.0)
        infos.append(info)
    return [*families.values(), *infos]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    supplies = parse(sources)
    return build(supplies, options) if supplies else []


COLLECTOR = Collector(
    "powersupplyclass",
    tuple(f"{PREFIX}*/{file}" for file in (*NUMBERS, *TEXTS)),
    collect,
    flags=(("ignored-supplies", "^$"),),
)
