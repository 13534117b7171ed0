"""Lab reports: a department's history and hour-of-week heatmap, utilisation per department and per
machine inside opening hours. Each also answers CSV (``?format=csv`` or ``Accept: text/csv``).

Occupied means one thing everywhere (docs/api.md): somebody sits at the seat, i.e. its seat state
is ``in_use``, ``idle`` or ``locked`` — a machine with only a remote SSH session is not occupied.
SQL reads one row per (department, hour) (``department_hourly``, migrations 0094/0096; rolled up in
plain mode) or, for the machines report, one row of running sums per machine and UTC day
(``machine_day``, 0096); opening hours become weights per UTC hour in Python (``api.hours``) and the
arithmetic is ``api.utilisation``'s. The history's seat states come from the seat history (0092): raw
samples below one-hour steps, the department's hourly counts (``department_seat_hourly``, 0094) from
one hour; its occupied machines are the machines in the occupied states.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, request
from psycopg import sql
from werkzeug.exceptions import NotFound

from optilab.api import hours, params, seats, series, tabular, utilisation
from optilab.api.context import state

bp = Blueprint("reports", __name__)

REPORT_SPAN = timedelta(days=7)
MAX_REPORT_SPAN = timedelta(days=400)  # hour by hour in Python: a semester and more, not a decade

MACHINES = "SELECT department, count(*) AS machines FROM systems WHERE department IS NOT NULL {where} GROUP BY 1"

# Occupied machines per (department, UTC hour): the sum of the machines' occupied seat shares, kept per
# department and hour by migrations 0094/0096 (720 rows per department and 30 days).
DEPARTMENT_HOURS = sql.SQL("""
    SELECT department, bucket, occupied FROM department_hourly
    WHERE bucket >= %(lower)s AND bucket < %(end)s {where}""")

# Per machine: occupied and up hours weighted by the open share of each hour, from each machine's
# running sums per UTC day (``machine_day``, migration 0096): a run of hours [a, b) of equal weight
# costs two subscripts. "Up" is the share of the hour's usage samples against the most any machine
# delivered in that hour (the scrape cadence). Hours not rolled up yet (plain mode, between
# maintenance passes) are in ``machine_pending_hours`` with their live and their stale shares.
MACHINE_HOURS = sql.SQL("""
    WITH runs AS (
        SELECT * FROM unnest(%(rd)s::text[], %(rday)s::timestamptz[], %(ra)s::int[], %(rb)s::int[],
                             %(rw)s::float8[]) AS r(department, day, a, b, w)),
    terms AS MATERIALIZED (  -- the subscripts first, so only numbers (not the arrays) are grouped
        SELECT d.system_id, r.w * (d.occupied[r.b + 1] - d.occupied[r.a + 1]) AS occupied,
            r.w * (d.up[r.b + 1] - d.up[r.a + 1]) AS up
        FROM runs r JOIN systems s ON s.department = r.department
        JOIN machine_day d ON d.system_id = s.id AND d.day = r.day
        WHERE d.day >= %(first_day)s AND d.day < %(end)s),
    base AS (
        SELECT system_id, sum(occupied) AS occupied_hours, sum(up) AS up_hours FROM terms GROUP BY system_id),
    fix AS (
        SELECT p.system_id, sum(r.w * (p.occupied - p.rolled_occupied)) AS occupied_hours,
            sum(r.w * (p.up - p.rolled_up)) AS up_hours
        FROM machine_pending_hours p JOIN systems s ON s.id = p.system_id
        JOIN runs r ON r.department = s.department AND r.day = p.day AND p.hr >= r.a AND p.hr < r.b
        WHERE p.bucket >= %(lower)s AND p.bucket < %(end)s
        GROUP BY p.system_id)
    SELECT s.id, s.instance, s.hostname, s.department,
        (coalesce(base.occupied_hours, 0) + coalesce(fix.occupied_hours, 0))::float8 AS occupied_hours,
        (coalesce(base.up_hours, 0) + coalesce(fix.up_hours, 0))::float8 AS up_hours
    FROM systems s LEFT JOIN base ON base.system_id = s.id LEFT JOIN fix ON fix.system_id = s.id
    WHERE s.department IS NOT NULL {where}
    ORDER BY s.department, s.id""")

# History: machines in each seat state per step bucket (the average over the bucket: each machine's
# share of its samples in that state); occupied machines are those in the occupied states. Below
# one-hour steps from the raw seat samples, from one hour from the department's hourly rows (0094).
# One pass over the department's raw seat samples (a primary-key range scan per seat series): per
# bucket and machine the count of samples in each state, then each machine's shares summed.
HISTORY_STATES = sql.SQL("""
    SELECT per.b, {shares}
    FROM systems s JOIN seat_series ss ON ss.system_id = s.id
    CROSS JOIN LATERAL (
        SELECT date_bin(%(step)s, sm.timestamp, %(origin)s) AS b, count(*)::float8 AS n, {counts}
        FROM samples sm
        WHERE sm.series_id = ss.series_id AND sm.timestamp >= %(start)s AND sm.timestamp < %(end)s
        GROUP BY 1) per
    WHERE s.department = %(department)s
    GROUP BY per.b""").format(
    counts=sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE sm.value = {}) AS {}").format(sql.Literal(code), sql.Identifier(f"c{code}"))
        for code in range(len(seats.STATES))
    ),
    shares=sql.SQL(", ").join(
        sql.SQL("sum({} / n)::float8 AS {}").format(sql.Identifier(f"c{code}"), sql.Identifier(name))
        for code, name in enumerate(seats.STATES)
    ),
)
# The same per department and hour (0094), averaged over the hours of each step.
HISTORY_STATES_HOURLY = sql.SQL("""
    WITH h AS (
        SELECT date_bin(%(step)s, bucket, %(origin)s) AS b, bucket, code, machines FROM department_seat_hourly
        WHERE department = %(department)s AND bucket >= date_bin(INTERVAL '1 hour', %(start)s, %(origin)s)
          AND bucket < %(end)s),
    hours AS (SELECT b, count(DISTINCT bucket) AS n FROM h GROUP BY b)
    SELECT h.b, st.state, (sum(h.machines) / hours.n)::float8 AS machines
    FROM h JOIN hours USING (b) JOIN seat_states st ON st.code = h.code
    GROUP BY h.b, st.state, hours.n""")


def day_runs(weights: list[tuple[datetime, float]]) -> list[tuple[datetime, int, int, float]]:
    """(UTC day, first hour, end hour, weight): the maximal runs of hours of one UTC day with the same
    non-zero open share, so a day open 08:30-18:00 is two runs ([8, 9) at 0.5, [9, 18) at 1.0)."""
    runs: list[tuple[datetime, int, int, float]] = []
    for bucket, weight in weights:
        if weight <= 0:
            continue
        day = bucket.replace(hour=0)
        if runs and runs[-1][0] == day and runs[-1][2] == bucket.hour and runs[-1][3] == weight:
            runs[-1] = (day, runs[-1][1], bucket.hour + 1, weight)
        else:
            runs.append((day, bucket.hour, bucket.hour + 1, weight))
    return runs


def _range(args: Mapping[str, str], span: timedelta) -> tuple[datetime, datetime]:
    start, end = params.time_range(args, state().clock(), span)
    if end - start > MAX_REPORT_SPAN:
        raise params.bad("start", f"report ranges are at most {MAX_REPORT_SPAN.days} days")
    return start, end


def find_department(name: str) -> tuple[str, int]:
    department = params.text({"name": name}, "name")
    assert department is not None
    row = state().db.fetch_one(MACHINES.format(where="AND department = %(department)s"), {"department": department})
    if row is None:
        raise NotFound(f"department {name!r} not found")
    return department, row["machines"]


def _department_hours(department: str | None, start: datetime, end: datetime) -> dict[str, utilisation.DepartmentHours]:
    db = state().db
    one = department is not None
    values = {"department": department, "lower": hours.hour_buckets(start, end)[0], "end": end}
    machines = {
        r["department"]: r["machines"]
        for r in db.fetch_all(MACHINES.format(where="AND department = %(department)s" if one else ""), values)
    }
    occupied: dict[str, dict[datetime, float]] = {name: {} for name in machines}
    query = DEPARTMENT_HOURS.format(where=sql.SQL("AND department = %(department)s" if one else ""))
    for row in db.fetch_all(query, values):
        occupied.setdefault(row["department"], {})[row["bucket"]] = row["occupied"]
    return {name: utilisation.DepartmentHours(name, machines.get(name, 0), occupied[name]) for name in sorted(occupied)}


def _opening(name: str) -> Any:
    return state().config.opening_hours.get(name)


@bp.get("/reports/utilisation")
@params.accepts("start", "end", "format")
def utilisation_report() -> Any:
    """Per department inside opening hours: utilisation, peak occupancy, hours at capacity, flags."""
    start, end = _range(request.args, REPORT_SPAN)
    rows = [
        {
            **utilisation.department_report(dept, hours.weights(_opening(name), start, end)),
            "timezone": hours.timezone_of(_opening(name)),
        }
        for name, dept in _department_hours(None, start, end).items()
    ]
    body = {
        "start": start,
        "end": end,
        "items": rows,
        "over_subscribed": [r["department"] for r in rows if r["over_subscribed"]],
        "underused": [r["department"] for r in rows if r["underused"]],
    }
    return tabular.respond(body, "items", "utilisation")


@bp.get("/reports/machines")
@params.accepts("start", "end", "department", "format")
def machines_report() -> Any:
    """Per machine inside its department's opening hours: in-use share, availability, hot seats."""
    args = request.args
    start, end = _range(args, REPORT_SPAN)
    department = params.text(args, "department")
    buckets = hours.hour_buckets(start, end)
    db = state().db
    names = [r["department"] for r in db.fetch_all(MACHINES.format(where=""), {})]
    runs: dict[str, list[Any]] = {"rd": [], "rday": [], "ra": [], "rb": [], "rw": []}
    open_hours: dict[str, float] = {}
    for name in names:
        opening = _opening(name)
        weights = [(b, hours.weight(opening, b)) for b in buckets]
        open_hours[name] = sum(w for _, w in weights)
        for day, first, last, weight in day_runs(weights):
            for key, value in zip(runs, (name, day, first, last, weight), strict=True):
                runs[key].append(value)
    where = sql.SQL("AND s.department = %(department)s" if department is not None else "")
    rows = db.fetch_all(
        MACHINE_HOURS.format(where=where),
        {**runs, "lower": buckets[0], "first_day": buckets[0].replace(hour=0), "end": end, "department": department},
    )
    machines = [
        utilisation.MachineHours(
            r["id"], r["instance"], r["hostname"], r["department"], r["occupied_hours"], r["up_hours"]
        )
        for r in rows
    ]
    items = utilisation.machine_report(machines, open_hours)
    body = {"start": start, "end": end, "items": items, "hot_seats": [r["system_id"] for r in items if r["hot_seat"]]}
    return tabular.respond(body, "items", "machines")


def heatmap_body(department: str, start: datetime, end: datetime) -> dict[str, Any]:
    dept = _department_hours(department, start, end)[department]
    opening = _opening(department)
    zone = hours.timezone_of(opening)
    cells = utilisation.heatmap(dept, hours.weights(opening, start, end), zone)
    return {
        "department": department,
        "start": start,
        "end": end,
        "timezone": zone,
        "machines": dept.machines,
        "opening_hours": hours.describe(opening),
        "cells": cells,
    }


def history_body(
    department: str, machines: int, start: datetime, end: datetime, step: timedelta | None
) -> dict[str, Any]:
    app = state()
    chosen = series.plan(start, end, step, app.config.max_points)
    values = {
        "department": department,
        "start": start,
        "end": end,
        "origin": series.ORIGIN,
        "step": timedelta(seconds=chosen.step_seconds),
        "resolution": timedelta(seconds=series.RESOLUTION[chosen.source]),
    }
    states: dict[datetime, dict[str, float]] = {}
    if chosen.source == "raw":
        for r in app.db.fetch_all(HISTORY_STATES, values):
            states[r["b"]] = {name: r[name] for name in seats.STATES}
    else:
        for r in app.db.fetch_all(HISTORY_STATES_HOURLY, values):
            states.setdefault(r["b"], {})[r["state"]] = r["machines"]
    points = []
    for bucket in sorted(states):
        counts = states[bucket]
        used = sum(v for name, v in counts.items() if name in seats.OCCUPIED)
        points.append(
            {
                "t": bucket,
                "occupied": round(used, 4),
                "utilisation_ratio": round(used / machines, 6) if machines else None,
                "states": {s: round(counts.get(s, 0.0), 4) for s in seats.STATES},
            }
        )
    return {
        "department": department,
        "start": start,
        "end": end,
        "machines": machines,
        "source": chosen.source,
        "step_seconds": chosen.step_seconds,
        "points": points,
    }


@bp.get("/departments/<name>/heatmap")
@params.accepts("start", "end", "format")
def department_heatmap(name: str) -> Any:
    """7 × 24 hour-of-week utilisation in the department's time zone (Monday first)."""
    department, _ = find_department(name)
    start, end = _range(request.args, REPORT_SPAN)
    return tabular.respond(heatmap_body(department, start, end), "cells", f"heatmap-{department}")


@bp.get("/departments/<name>/history")
@params.accepts("start", "end", "step", "format")
def department_history(name: str) -> Any:
    """Machines in each seat state and utilisation per step bucket."""
    department, machines = find_department(name)
    args = request.args
    start, end = _range(args, timedelta(hours=24))
    step = params.duration(args["step"], "step") if args.get("step") else None
    return tabular.respond(history_body(department, machines, start, end, step), "points", f"history-{department}")
