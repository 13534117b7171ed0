"""Utilisation arithmetic of the reports, pure: from per-hour rows and opening-hour weights to numbers.

Units (docs/api.md, one convention for the whole API): every share is a ratio from 0 to 1 whose
name ends in ``_ratio``; machine counts are plain numbers (averages may be fractional); durations
end in ``_hours``. Definitions:

- occupied: a seat somebody sits at — seat state ``in_use``, ``idle`` or ``locked`` (a remote SSH
  session alone leaves the seat free); a machine's share of an hour is the share of its seat samples
  in those states, and an hour's *occupied machines* is the sum of those shares;
- open hours: the sum of the hours' open shares (``api.hours``), so 08:30 opening counts half an hour;
- ``utilisation_ratio`` = occupied seat-time ÷ open seat-time = Σ w·occupied ÷ (machines · Σ w);
- at capacity: an open hour in which occupied machines ≥ ``CAPACITY_RATIO`` of the machines;
- over-subscribed: at capacity for at least ``OVERSUBSCRIBED_RATIO`` of the open hours;
  underused: utilisation below ``UNDERUSED_RATIO``;
- hot seat: a machine in use for at least ``HOT_FACTOR`` times its room's average share (and at least
  ``HOT_MIN_RATIO`` above it), the seats students queue for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from optilab.api.hours import hour_of_week

CAPACITY_RATIO = 0.9
OVERSUBSCRIBED_RATIO = 0.1
UNDERUSED_RATIO = 0.2
HOT_FACTOR = 1.5
HOT_MIN_RATIO = 0.1


def _ratio(part: float, whole: float) -> float | None:
    return None if whole <= 0 else round(part / whole, 6)


@dataclass(frozen=True)
class DepartmentHours:
    """A department's hourly occupancy: ``occupied[bucket]`` = occupied machines in that UTC hour."""

    name: str
    machines: int
    occupied: Mapping[datetime, float]


def department_report(dept: DepartmentHours, weights: Iterable[tuple[datetime, float]]) -> dict[str, object]:
    open_hours = occupied_hours = capacity_hours = 0.0
    peak = 0.0
    for bucket, weight in weights:
        if weight <= 0:
            continue
        occupied = dept.occupied.get(bucket, 0.0)
        open_hours += weight
        occupied_hours += weight * occupied
        peak = max(peak, occupied)
        if dept.machines and occupied >= CAPACITY_RATIO * dept.machines:
            capacity_hours += weight
    utilisation = _ratio(occupied_hours, open_hours * dept.machines)
    capacity_share = _ratio(capacity_hours, open_hours)
    return {
        "department": dept.name,
        "machines": dept.machines,
        "open_hours": round(open_hours, 4),
        "occupied_machine_hours": round(occupied_hours, 4),
        "utilisation_ratio": utilisation,
        "peak_occupancy": round(peak, 4),
        "peak_occupancy_ratio": _ratio(peak, dept.machines),
        "hours_at_capacity": round(capacity_hours, 4),
        "at_capacity_ratio": capacity_share,
        "over_subscribed": capacity_share is not None and capacity_share >= OVERSUBSCRIBED_RATIO,
        "underused": utilisation is not None and utilisation < UNDERUSED_RATIO,
    }


def heatmap(dept: DepartmentHours, weights: Iterable[tuple[datetime, float]], zone: str) -> list[dict[str, object]]:
    """7 × 24 cells (Monday first) in the department's time zone: mean utilisation of that hour of the
    week over the hours with data, and how much of it was open; cells without data are null."""
    sums = [[0.0] * 24 for _ in range(7)]
    counts = [[0] * 24 for _ in range(7)]
    opens = [[0.0] * 24 for _ in range(7)]
    for bucket, weight in weights:
        if bucket not in dept.occupied:
            continue  # nothing was recorded in that hour: unknown, not empty
        day, hour = hour_of_week(bucket, zone)
        sums[day][hour] += dept.occupied[bucket]
        counts[day][hour] += 1
        opens[day][hour] += weight
    cells: list[dict[str, object]] = []
    for day in range(7):
        for hour in range(24):
            n = counts[day][hour]
            cells.append(
                {
                    "day": day,
                    "hour": hour,
                    "utilisation_ratio": _ratio(sums[day][hour], n * dept.machines) if n else None,
                    "open_ratio": round(opens[day][hour] / n, 6) if n else None,
                }
            )
    return cells


@dataclass(frozen=True)
class MachineHours:
    """One machine over the range: weighted occupied and up hours (weights = open shares)."""

    system_id: int
    instance: str
    hostname: str | None
    department: str
    occupied_hours: float
    up_hours: float


def machine_report(machines: Iterable[MachineHours], open_hours: Mapping[str, float]) -> list[dict[str, object]]:
    """Per machine: ``in_use_ratio`` of open time, ``availability_ratio`` (up while open), ``hot_seat``."""
    rows = []
    for m in machines:
        total = open_hours.get(m.department, 0.0)
        rows.append(
            {
                "system_id": m.system_id,
                "instance": m.instance,
                "hostname": m.hostname,
                "department": m.department,
                "open_hours": round(total, 4),
                "in_use_ratio": _ratio(m.occupied_hours, total),
                "availability_ratio": _ratio(min(m.up_hours, total), total),
            }
        )
    by_room: dict[str, list[float]] = {}
    for row in rows:
        if row["in_use_ratio"] is not None:
            by_room.setdefault(str(row["department"]), []).append(float(row["in_use_ratio"]))  # type: ignore[arg-type]
    averages = {room: sum(values) / len(values) for room, values in by_room.items()}
    for row in rows:
        average = averages.get(str(row["department"]))
        share = row["in_use_ratio"]
        row["room_average_in_use_ratio"] = None if average is None else round(average, 6)
        row["hot_seat"] = (
            average is not None
            and isinstance(share, int | float)
            and average > 0
            and share >= HOT_FACTOR * average
            and share - average >= HOT_MIN_RATIO
        )
    return rows
