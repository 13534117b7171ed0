"""node_exporter's time collector, on the target's clock: time, zone offset, clocksources.

``node_time_seconds`` must be the target's clock, or uptime (time minus boot time) would mix two
clocks; one ``date`` prints seconds (with nanoseconds where date has %N), the zone offset and its
abbreviation. Clocksources come from /sys like upstream (``device`` = their index).

``date`` is a process start (~1.3 ms of the target's CPU on the test VM, a sixth of a scrape), so it
runs with the file listing (:data:`CLOCK_LISTING`, exporter/command.py): every exec, and once every
``LIST_CALLS`` calls of a long-lived shell, which keeps its line together with /proc/uptime read
right after it. Every scrape then prints that line and /proc/uptime again with builtins only, and
the time is the kept reading plus the uptime since (:func:`parse_clock`). /proc/uptime counts
CLOCK_BOOTTIME in hundredths of a second; NTP's slewing moves it with the wall clock, so the two only
part when the clock is *stepped* (or the zone changes): that shows at the next listing, at most
``LIST_CALLS`` scrapes late. docs/exporter.md lists the difference.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, matching, source
from optilab.exporter.family import Family, gauge

CLOCKSOURCE = "/sys/devices/system/clocksource/clocksource"
DATE = "date '+%s.%N %z %Z'"
#: One item, ``<date's line> <uptime>``, made with the file listing.
CLOCK_LISTING = f'd=$({DATE} 2>/dev/null) && read -r u i < /proc/uptime && l="$l$d $u\n"'
#: Every scrape: the kept item and the uptime now (builtins), or ``date`` itself when either is missing.
CLOCK = (
    "read -r u i < /proc/uptime && case $listed_clock in *' '*) printf '%s%s\\n' \"$listed_clock\" \"$u\";; "
    "*) false;; esac || " + DATE
)


def parse_date(text: str) -> tuple[float, int, str]:
    """``1796164011.123456789 +0100 CET`` -> (seconds, zone offset in seconds, zone name).

    A date without %N (busybox) prints ``1796164011.N`` or ``1796164011.%N``: whole seconds then.
    """
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"expected 'seconds offset zone' from date, got {text.strip()!r}")
    seconds, _, fraction = fields[0].partition(".")
    now = float(f"{seconds}.{fraction}") if fraction.isdigit() else float(seconds)
    offset = fields[1]
    if len(offset) != 5 or offset[0] not in "+-" or not offset[1:].isdigit():
        raise ValueError(f"bad zone offset {offset!r}")
    sign = -1 if offset[0] == "-" else 1
    return now, sign * (int(offset[1:3]) * 3600 + int(offset[3:5]) * 60), fields[2]


def parse_clock(text: str) -> tuple[float, int, str]:
    """The clock command's answer: ``date``'s own line, or a kept one and the uptimes then and now.

    ``1796164011.5 +0100 CET 4000.00`` then ``4015.25`` -> (1796164026.75, 3600, "CET").
    """
    lines = text.splitlines()
    if len(lines) != 2:
        return parse_date(text)
    kept, _, then = lines[0].rpartition(" ")
    now, offset, zone = parse_date(kept)
    try:
        since = float(lines[1]) - float(then)
    except ValueError:
        raise ValueError(f"bad uptimes in the clock's answer: {then!r}, {lines[1]!r}") from None
    if not 0 <= since < 86400 * 366:
        raise ValueError(f"uptime went from {then} to {lines[1]}")
    return now + since, offset, zone


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    now, offset, zone = parse_clock(source(sources, "cmd:date"))
    zone_family = Family(
        "node_time_zone_offset_seconds", "gauge", "System time zone offset in seconds.", ("time_zone",)
    )
    zone_family.add((zone,), offset)
    available = Family(
        "node_time_clocksource_available_info",
        "gauge",
        "Available clocksources read from '/sys/devices/system/clocksource'.",
        ("device", "clocksource"),
    )
    current = Family(
        "node_time_clocksource_current_info",
        "gauge",
        "Current clocksource read from '/sys/devices/system/clocksource'.",
        ("device", "clocksource"),
    )
    devices = sorted(
        set(matching(sources, CLOCKSOURCE, "/available_clocksource"))
        | set(matching(sources, CLOCKSOURCE, "/current_clocksource"))
    )
    for index, device in enumerate(devices):
        for name in sources.get(f"{CLOCKSOURCE}{device}/available_clocksource", "").split():
            available.add((str(index), name), 1.0)
        name = sources.get(f"{CLOCKSOURCE}{device}/current_clocksource", "").strip()
        if name:
            current.add((str(index), name), 1.0)
    return [
        gauge("node_time_seconds", "System time in seconds since epoch (1970).", now),
        zone_family,
        available,
        current,
    ]


COLLECTOR = Collector(
    name="time",
    paths=(f"{CLOCKSOURCE}[0-9]*/available_clocksource", f"{CLOCKSOURCE}[0-9]*/current_clocksource"),
    commands=(("date", CLOCK),),
    listings=(("clock", CLOCK_LISTING),),
    collect=collect,
)
