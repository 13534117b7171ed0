"""systemd (slow tier): node_exporter's systemd collector names, from ``systemctl`` instead of D-Bus.

Three constant commands, run by the slow tier (exporter/slowtier.py) on its own interval:
``systemctl list-units --all`` gives what upstream's ``ListUnits`` call gives (every unit in
memory with its load and active state), ``systemctl show`` the per-unit properties upstream asks
D-Bus for (a service's or mount's ``Type``, a timer's ``LastTriggerUSec``, a socket's connection
counters), ``systemctl is-system-running`` the manager's ``SystemState`` and ``systemctl --version``
the version. Filters are upstream's: ``--collector.systemd.unit-include`` (``.+``) and
``unit-exclude`` (``.+\\.(automount|device|mount|scope|slice)``), both anchored, applied to loaded
units; ``node_systemd_units`` counts every unit. A host without systemctl has no families.
"""

from __future__ import annotations

import re

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family, gauge

UNITS = "cmd:systemd_units"
SHOW = "cmd:systemd_show"
STATE = "cmd:systemd_state"
VERSION = "cmd:systemd_version"
COMMANDS = (
    ("systemd_units", "systemctl list-units --all --plain --no-legend --no-pager"),
    (
        "systemd_show",
        "systemctl show --no-pager --timestamp=unix"
        " --property=Id,Type,LastTriggerUSec,NAccepted,NConnections,NRefused"
        " '*.service' '*.mount' '*.timer' '*.socket'",
    ),
    ("systemd_state", "systemctl is-system-running"),
    ("systemd_version", "systemctl --version"),
)
STATES = ("active", "activating", "deactivating", "inactive", "failed")
_VERSION = re.compile(r"[0-9]{3,}(\.[0-9]+)?")


def parse_units(text: str) -> list[tuple[str, str, str]]:
    """(name, load state, active state) per line of ``list-units --plain --no-legend``; a failed
    unit's leading ``●`` marker (printed even with --plain by some versions) is dropped."""
    units = []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in ("●", "*"):
            fields = fields[1:]
        if len(fields) >= 4:
            units.append((fields[0], fields[1], fields[2]))
    return units


def parse_show(text: str) -> dict[str, dict[str, str]]:
    """``{unit: {property: value}}`` from ``systemctl show`` (blocks separated by blank lines)."""
    units: dict[str, dict[str, str]] = {}
    block: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if "Id" in block:
                units[block["Id"]] = block
            block = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            block[key] = value
    return units


def parse_version(text: str) -> tuple[float, str] | None:
    """``systemd 252 (252.38-1~deb12u1)`` -> (252.38, "252.38-1~deb12u1")."""
    first = text.splitlines()[0] if text.strip() else ""
    match = re.match(r"systemd (\S+)(?: \((\S+)\))?", first)
    if match is None:
        return None
    full = match.group(2) or match.group(1)
    number = _VERSION.search(full)
    return (float(number.group(0)) if number else 0.0), full


def _unix(value: str) -> float | None:
    """``@1700000000`` (``--timestamp=unix``) -> seconds; ``n/a`` or empty (never) -> 0, as upstream's 0 µs."""
    value = value.strip()
    if value.startswith("@") and value[1:].isdigit():
        return float(value[1:])
    return 0.0 if value in ("", "n/a") else None


def build(
    units: list[tuple[str, str, str]],
    props: dict[str, dict[str, str]],
    state: str | None,
    version: tuple[float, str] | None,
    options: CollectorOptions,
) -> list[Family]:
    include = re.compile(f"^(?:{options.get('unit-include') or '.+'})$")
    exclude = re.compile(f"^(?:{options.get('unit-exclude')})$") if options.get("unit-exclude") else None
    families = []
    if version is not None:
        family = Family("node_systemd_version", "gauge", "Detected systemd version", ("version",))
        family.add((version[1],), version[0])
        families.append(family)
    summary = dict.fromkeys(STATES, 0.0)
    for _name, _load, active in units:
        summary[active] = summary.get(active, 0.0) + 1
    units_family = Family("node_systemd_units", "gauge", "Summary of systemd unit states", ("state",))
    for name, count in summary.items():
        units_family.add((name,), count)
    unit_state = Family("node_systemd_unit_state", "gauge", "Systemd unit", ("name", "state", "type"))
    timers = Family(
        "node_systemd_timer_last_trigger_seconds", "gauge", "Seconds since epoch of last trigger.", ("name",)
    )
    accepted = Family(
        "node_systemd_socket_accepted_connections_total",
        "counter",
        "Total number of accepted socket connections",
        ("name",),
    )
    current = Family(
        "node_systemd_socket_current_connections", "gauge", "Current number of socket connections", ("name",)
    )
    refused = Family(
        "node_systemd_socket_refused_connections_total",
        "counter",
        "Total number of refused socket connections",
        ("name",),
    )
    for name, load, active in units:
        if load != "loaded" or not include.match(name) or (exclude is not None and exclude.match(name)):
            continue
        unit_props = props.get(name, {})
        kind = unit_props.get("Type", "") if name.endswith((".service", ".mount")) else ""
        for state_name in STATES:
            unit_state.add((name, state_name, kind), 1.0 if active == state_name else 0.0)
        if name.endswith(".timer") and "LastTriggerUSec" in unit_props:
            last = _unix(unit_props["LastTriggerUSec"])
            if last is not None:
                timers.add((name,), last)
        if name.endswith(".socket"):
            for family, key in ((accepted, "NAccepted"), (current, "NConnections"), (refused, "NRefused")):
                if unit_props.get(key, "").isdigit():
                    family.add((name,), int(unit_props[key]))
    families += [units_family, unit_state, timers, accepted, current, refused]
    if state is not None:
        families.append(
            gauge(
                "node_systemd_system_running",
                "Whether the system is operational (see 'systemctl is-system-running')",
                1.0 if state.strip() == "running" else 0.0,
            )
        )
    return families


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    if UNITS not in sources:
        return []  # no systemctl on this host
    units = parse_units(sources[UNITS])
    if not units:
        raise ValueError("systemctl list-units listed no units (no systemd as PID 1?)")
    version = parse_version(sources.get(VERSION, ""))
    return build(units, parse_show(sources.get(SHOW, "")), sources.get(STATE), version, options)


COLLECTOR = Collector(
    "systemd",
    (),
    collect,
    commands=COMMANDS,
    tier="slow",
    flags=(("unit-include", ".+"), ("unit-exclude", ".+\\.(automount|device|mount|scope|slice)")),
)
