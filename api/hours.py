"""Opening hours → how much of each UTC hour a department is open (pure functions).

Reports count use only while a room is open: a 24/7 denominator would understate a lab that is
closed at night. The inventory (``optilab-api --inventory FILE``, the exporter's own file) gives
each department a time zone, spans per weekday and closed dates (exporter/config.py
``OpeningHours``). Here they become weights per UTC hour bucket in a range: 1.0 for an hour wholly
open, a fraction for 08:30, 0 for closed — daylight-saving shifts and closed dates included,
because every bucket is converted to local time on its own. A department without opening hours is
open around the clock.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from optilab.exporter.config import OpeningHours

HOUR = timedelta(hours=1)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def hour_buckets(start: datetime, end: datetime) -> list[datetime]:
    """UTC hour starts covering ``[start, end)``: the hour containing start up to the last before end."""
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    buckets, moment = [], first
    while moment < end:
        buckets.append(moment)
        moment += HOUR
    return buckets


def open_minutes(hours: OpeningHours, local: datetime) -> int:
    """Minutes of the local wall-clock hour starting at ``local`` during which the room is open."""
    if local.date() in hours.closed:
        return 0
    lo = local.hour * 60 + local.minute
    hi = lo + 60
    return sum(max(0, min(hi, end) - max(lo, begin)) for begin, end in hours.weekly[local.weekday()])


def weight(hours: OpeningHours | None, bucket: datetime) -> float:
    """Open share (0..1) of the UTC hour starting at ``bucket``."""
    if hours is None:
        return 1.0
    local = bucket.astimezone(zoneinfo.ZoneInfo(hours.timezone))
    return open_minutes(hours, local) / 60.0


def weights(hours: OpeningHours | None, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """(bucket, open share) for every UTC hour bucket of the range, closed hours included (share 0)."""
    return [(bucket, weight(hours, bucket)) for bucket in hour_buckets(start, end)]


def timezone_of(hours: OpeningHours | None) -> str:
    return "UTC" if hours is None else hours.timezone


def hour_of_week(bucket: datetime, zone: str) -> tuple[int, int]:
    """(weekday 0 = Monday, hour) of a UTC bucket in the department's time zone."""
    local = bucket.astimezone(zoneinfo.ZoneInfo(zone))
    return local.weekday(), local.hour


def describe(hours: OpeningHours | None) -> dict[str, object]:
    """Opening hours as JSON: ``{"timezone", "weekly": {"mon": ["08:00-20:00"], ...}, "closed": [...]}``."""
    if hours is None:
        return {"timezone": "UTC", "weekly": {day: ["00:00-24:00"] for day in DAY_NAMES}, "closed": []}
    return {
        "timezone": hours.timezone,
        "weekly": {
            DAY_NAMES[i]: [f"{b // 60:02d}:{b % 60:02d}-{e // 60:02d}:{e % 60:02d}" for b, e in spans]
            for i, spans in enumerate(hours.weekly)
        },
        "closed": sorted(day.isoformat() for day in hours.closed),
    }


def for_department(settings: Mapping[str, OpeningHours], name: str | None) -> OpeningHours | None:
    return settings.get(name) if name is not None else None
