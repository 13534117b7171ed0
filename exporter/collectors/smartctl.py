"""smartctl (slow tier): disk health from ``smartctl --json``, under smartctl_exporter's names.

One constant command: for each block device ``/dev/sd?``, ``/dev/nvme?n?`` that exists, ``smartctl
--json --info --health --attributes --nocheck=standby,0`` (a disk asleep is not woken), and when that is
refused for lack of privilege, the same through ``sudo -n`` (works only where the admin allowed the
monitoring account that one command without a password; otherwise it fails at once). Device paths
come from the target's own /dev glob, never from configuration. A host without smartctl answers
status 127: no families. The answer is one JSON document per attempt; the last one per device wins.

Names, labels, types and HELP are smartctl_exporter's (prometheus-community): ``smartctl_device``
(info), ``smartctl_device_smartctl_exit_status``, ``smartctl_device_smart_status``,
``smartctl_device_temperature{temperature_type}``, ``smartctl_device_power_on_seconds``,
``smartctl_device_power_cycle_count``, ``smartctl_device_capacity_bytes``, ``smartctl_device_attribute``
(ATA attributes: value, worst, thresh, raw), and NVMe's ``smartctl_device_percentage_used``,
``smartctl_device_available_spare``, ``smartctl_device_critical_warning``, ``smartctl_device_media_errors``.
A device whose answer has no ``smart_status`` (permission denied) gets only its exit status.
"""

from __future__ import annotations

import json
from typing import Any

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family

SOURCE = "cmd:smartctl"
COMMAND = (
    'for d in /dev/sd? /dev/nvme?n?; do [ -b "$d" ] || continue; '
    'smartctl --json --info --health --attributes --nocheck=standby,0 "$d"; '
    '[ $? -eq 2 ] && sudo -n smartctl --json --info --health --attributes --nocheck=standby,0 "$d"; '
    "done; true"
)
DEVICE_LABELS = ("device", "model_family", "model_name", "serial_number")
INFO_LABELS = (
    "device",
    "interface",
    "protocol",
    "model_family",
    "model_name",
    "serial_number",
    "ata_additional_product_id",
    "firmware_version",
    "ata_version",
    "sata_version",
)
_ATTRIBUTE_FLAGS = ("prefailure", "updated_online", "performance", "error_rate", "event_count", "auto_keep")


def parse(text: str) -> dict[str, dict[str, Any]]:
    """``{device: smartctl's JSON}``, the last document per device; ``ValueError`` on other text."""
    decoder, pos, devices = json.JSONDecoder(), 0, {}
    text = text.strip()
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            document, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ValueError(f"smartctl answer is not JSON at {pos}: {exc.msg}") from None
        name = document.get("device", {}).get("name") if isinstance(document, dict) else None
        if not isinstance(name, str):
            raise ValueError("smartctl JSON without device.name")
        devices[name] = document
    return devices


def _get(document: dict[str, Any], path: str, default: Any = None) -> Any:
    value: Any = document
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return float(value) if isinstance(value, int | float) else 0.0


def build(devices: dict[str, dict[str, Any]]) -> list[Family]:
    def family(name: str, help_text: str, kind: str = "gauge", extra: tuple[str, ...] = ()) -> Family:
        return Family(name, kind, help_text, (*DEVICE_LABELS, *extra))

    exit_status = family("smartctl_device_smartctl_exit_status", "Exit status of smartctl on device")
    info = Family("smartctl_device", "gauge", "Device info", INFO_LABELS)
    status = family("smartctl_device_smart_status", "General smart status")
    temperature = family("smartctl_device_temperature", "Device temperature celsius", extra=("temperature_type",))
    power_on = family("smartctl_device_power_on_seconds", "Device power on seconds", "counter")
    cycles = family("smartctl_device_power_cycle_count", "Device power cycle count", "counter")
    capacity = family("smartctl_device_capacity_bytes", "Device capacity in bytes")
    attribute = family(
        "smartctl_device_attribute",
        "Device attributes",
        extra=(
            "attribute_name",
            "attribute_flags_short",
            "attribute_flags_long",
            "attribute_value_type",
            "attribute_id",
        ),
    )
    nvme = {
        key: family(f"smartctl_device_{key}", help_text, "counter")
        for key, help_text in (
            ("percentage_used", "Device write percentage used"),
            ("available_spare", "Normalized percentage (0 to 100%) of the remaining spare capacity available"),
            ("critical_warning", "This field indicates critical warnings for the state of the controller"),
            (
                "media_errors",
                "Contains the number of occurrences where the controller detected an unrecovered data "
                "integrity error. Errors such as uncorrectable ECC, CRC checksum failure, or LBA tag "
                "mismatch are included in this field",
            ),
        )
    }
    for name in sorted(devices):
        doc = devices[name]
        labels = (name.strip(), *(str(_get(doc, key, "")).strip() for key in DEVICE_LABELS[1:]))
        exit_status.add(labels, _number(_get(doc, "smartctl.exit_status", 0)))
        if _get(doc, "smart_status") is None:
            continue  # refused (permission) or no SMART: nothing more smartctl_exporter would trust
        info.add(
            (
                labels[0],
                str(_get(doc, "device.type", "")),
                str(_get(doc, "device.protocol", "")),
                *labels[1:],
                str(_get(doc, "ata_additional_product_id", "unknown")),
                str(_get(doc, "firmware_version", "")),
                str(_get(doc, "ata_version.string", "")),
                str(_get(doc, "sata_version.string", "")),
            ),
            1.0,
        )
        status.add(labels, _number(_get(doc, "smart_status.passed", False)))
        for key, value in (_get(doc, "temperature", {}) or {}).items():
            temperature.add((*labels, key), _number(value))
        power_on.add(
            labels,
            _number(_get(doc, "power_on_time.hours", 0)) * 3600 + _number(_get(doc, "power_on_time.minutes", 0)) * 60,
        )
        cycles.add(labels, _number(_get(doc, "power_cycle_count", 0)))
        capacity.add(labels, _number(_get(doc, "user_capacity.bytes", 0)))
        for row in _get(doc, "ata_smart_attributes.table", []) or []:
            flags = row.get("flags", {})
            long_flags = ",".join(flag for flag in _ATTRIBUTE_FLAGS if flags.get(flag) is True)
            base = (*labels, str(row.get("name", "")).strip(), str(flags.get("string", "")).strip(), long_flags)
            for kind, path in (("value", "value"), ("worst", "worst"), ("thresh", "thresh"), ("raw", "raw.value")):
                attribute.add((*base, kind, str(row.get("id", ""))), _number(_get(row, path, 0)))
        if _get(doc, "nvme_smart_health_information_log") is not None:
            for key, fam in nvme.items():
                fam.add(labels, _number(_get(doc, f"nvme_smart_health_information_log.{key}", 0)))
    return [exit_status, info, status, temperature, power_on, cycles, capacity, attribute, *nvme.values()]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    text = sources.get(SOURCE)
    if text is None:
        return []  # no smartctl on this host
    devices = parse(text)
    return build(devices) if devices else []


COLLECTOR = Collector("smartctl", (), collect, commands=(("smartctl", COMMAND),), tier="slow")
