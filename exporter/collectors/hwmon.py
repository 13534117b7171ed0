"""hwmon: ``node_hwmon_*`` from /sys/class/hwmon/hwmonN/ and its ``device/`` (node_exporter's hwmon).

Sensor files are read by glob, one per sensor type; the chip label comes from where the chip's
``device`` link points (``platform_coretemp_0``), which a file read cannot tell: the ``hwmon_links``
command resolves the links with shell builtins only (``cd -P`` and ``$PWD``, no process), and costs
nothing on a host without hwmon. A chip without a device link is named from its ``name`` file, else
its directory, as upstream does.
"""

from __future__ import annotations

import re

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices, number
from optilab.exporter.family import Family

PREFIX = "/sys/class/hwmon/"
#: the sensor types upstream reads; ``in*`` also covers ``intrusion*``.
SENSOR_TYPES = (
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
)
_GLOBS = (
    "name",
    "vrm",
    "beep_enable",
    "update_interval",
    "in*",
    "cpu*",
    "fan*",
    "pwm*",
    "temp*",
    "curr*",
    "power*",
    "energy*",
    "humidity*",
)
LINKS = "cmd:hwmon_links"
LINKS_COMMAND = (
    'for d in /sys/class/hwmon/*; do [ -d "$d/device" ] && cd -P "$d/device" 2>/dev/null'
    ' && printf \'%s %s\\n\' "${d##*/}" "$PWD"; done; cd /'
)
_FILENAME = re.compile(r"^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$")
_INVALID = re.compile(r"[^a-z0-9:_]")
_CHIP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # what drivers name their chips (no spaces, no '*')
LABELS = ("chip", "sensor")


def clean(name: str) -> str:
    return _INVALID.sub("_", name.lower()).strip("_")


def explode(filename: str) -> tuple[str, int, str] | None:
    """``temp1_input`` -> ``("temp", 1, "input")``; ``vrm`` -> ``("vrm", 0, "")``."""
    match = _FILENAME.match(filename)
    if match is None:
        return None
    number_text = match.group("id") or ""
    return match.group("type"), int(number_text) if number_text else 0, match.group("property") or ""


def chip_label(directory: str, link: str | None, name: str | None) -> str:
    if link:
        parent, _, device_name = link.rstrip("/").rpartition("/")
        device_type = parent.rpartition("/")[2]
        clean_type, clean_name = clean(device_type), clean(device_name)
        if clean_type and clean_name:
            return f"{clean_type}_{clean_name}"
        if clean_name:
            return clean_name
    if name and clean(name):
        return clean(name)
    return clean(directory)


def parse(sources: Sources) -> dict[str, tuple[str | None, dict[str, dict[str, str]]]]:
    """``{chip label: (chip name or None, {sensor: {property: value}})}``."""
    links = {}
    for line in sources.get(LINKS, "").splitlines():
        directory, _, target = line.partition(" ")
        if target:
            links[directory] = target
    chips: dict[str, tuple[str | None, dict[str, dict[str, str]]]] = {}
    for directory, files in sorted(devices(sources, PREFIX).items()):
        name = files.get("name")
        data: dict[str, dict[str, str]] = {}
        for relative in sorted(files, key=lambda f: f.startswith("device/")):  # device/ overrides
            exploded = explode(relative.removeprefix("device/"))
            if relative == "name" or "/" in relative.removeprefix("device/") or exploded is None:
                continue
            sensor_type, index, prop = exploded
            if sensor_type in SENSOR_TYPES:
                text = sources[PREFIX + directory + "/" + relative]
                data.setdefault(f"{sensor_type}{index}", {})[prop] = text.strip("\n")
        if name is not None and not _CHIP_NAME.match(name):
            raise ValueError(f"hwmon {directory[:20]!r}: chip name {name[:20]!r} is no driver's")
        chip = chip_label(directory, links.get(directory), name)
        chips[chip] = (clean(name) if name and clean(name) else None, data)
    return chips


def _metric(sensor_type: str, element: str, has_plain: bool) -> tuple[str, str, str, float] | None:
    """(name, type, HELP, scale) of one sensor element, upstream's rules; None for the label."""
    name = f"node_hwmon_{sensor_type}"
    if element == "input":
        name += "_input" if has_plain else ""
    elif element:
        name += "_" + clean(element)
    if element in ("fault", "alarm"):
        return name, "gauge", f"Hardware sensor {element} status ({sensor_type})", 1.0
    if element == "beep":
        return name + "_enabled", "gauge", "Hardware monitor sensor has beeping enabled", 1.0
    if sensor_type in ("in", "cpu"):
        return name + "_volts", "gauge", f"Hardware monitor for voltage ({element})", 0.001
    if sensor_type == "temp" and element != "type":
        return name + "_celsius", "gauge", f"Hardware monitor for temperature ({element or 'input'})", 0.001
    if sensor_type == "curr":
        return name + "_amps", "gauge", f"Hardware monitor for current ({element})", 0.001
    if sensor_type == "energy":
        return name + "_joule_total", "counter", f"Hardware monitor for joules used so far ({element})", 1e-6
    if sensor_type == "power" and element == "accuracy":
        return name, "gauge", "Hardware monitor power meter accuracy, as a ratio", 1e-6
    if sensor_type == "power" and element in ("average_interval", "average_interval_min", "average_interval_max"):
        return name + "_seconds", "gauge", f"Hardware monitor power usage update interval ({element})", 0.001
    if sensor_type == "power":
        return name + "_watt", "gauge", f"Hardware monitor for power usage in watts ({element})", 1e-6
    if sensor_type == "humidity":
        return (
            name,
            "gauge",
            (
                "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity "
                f"as a percentage) ({element})"
            ),
            1e-6,
        )
    if sensor_type == "fan" and element in ("input", "min", "max", "target"):
        return name + "_rpm", "gauge", f"Hardware monitor for fan revolutions per minute ({element})", 1.0
    return name, "gauge", f"Hardware monitor {sensor_type} element {element}", 1.0


def build(chips: dict[str, tuple[str | None, dict[str, dict[str, str]]]]) -> list[Family]:
    names = Family(
        "node_hwmon_chip_names", "gauge", "Annotation metric for human-readable chip names", ("chip", "chip_name")
    )
    labels = Family("node_hwmon_sensor_label", "gauge", "Label for given chip and sensor", ("chip", "sensor", "label"))
    families: dict[str, Family] = {}

    def add(name: str, kind: str, help_text: str, values: tuple[str, ...], value: float) -> None:
        family = families.get(name)
        if family is None:
            family = families[name] = Family(name, kind, help_text, LABELS)
        family.add(values, value)

    parsed = 0
    for chip, (chip_name, sensors) in chips.items():
        if chip_name is not None:
            names.add((chip, chip_name), 1.0)
        for sensor in sorted(sensors):
            data = sensors[sensor]
            sensor_type = explode(sensor)[0]  # type: ignore[index]
            key = (chip, sensor)
            if "label" in data:
                labels.add((chip, sensor, data["label"]), 1.0)
            if sensor_type == "beep_enable":
                if data.get("") in ("0", "1"):  # upstream: 1 if "1" else 0; the kernel prints only these
                    add("node_hwmon_beep_enabled", "gauge", "Hardware beep enabled", key, float(data[""] == "1"))
                    parsed += 1
                continue
            if sensor_type in ("vrm", "update_interval"):
                value = number(data.get("", ""))
                if value is not None:
                    parsed += 1
                    if sensor_type == "vrm":
                        add("node_hwmon_voltage_regulator_version", "gauge", "Hardware voltage regulator", key, value)
                    else:
                        add(
                            "node_hwmon_update_interval_seconds",
                            "gauge",
                            "Hardware monitor update interval",
                            key,
                            value * 0.001,
                        )
                continue
            for element in sorted(data):
                if element == "label":
                    continue
                value = number(data[element])
                spec = _metric(sensor_type, element, "" in data)
                if value is None or spec is None:
                    continue
                name, kind, help_text, scale = spec
                add(name, kind, help_text, key, value * scale)
                parsed += 1
    if any(sensors for _, sensors in chips.values()) and not parsed:
        raise ValueError("no hwmon sensor value parses")
    return [names, labels, *families.values()]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    chips = parse(sources)
    return build(chips) if chips else []


COLLECTOR = Collector(
    "hwmon",
    tuple(PREFIX + "*/" + pattern for pattern in _GLOBS) + tuple(PREFIX + "*/device/" + p for p in _GLOBS[1:]),
    collect,
    commands=(("hwmon_links", LINKS_COMMAND),),
)
