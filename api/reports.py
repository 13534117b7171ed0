"""Lab reports: a department's history and hour-of-week heatmap, utilisation per department and per
machine inside opening hours. Each also answers CSV (``?format=csv`` or ``Accept: text/csv``).

SQL reads one row per (department, hour) (``department_hourly``, migration 0094; rolled up in plain
mode) or, for the machines report, hourly rows per machine (``usage_hourly``); opening hours
become weights per UTC hour in Python (``api.hours``) and the arithmetic is ``api.utilisation``'s.
The history's seat states come from the seat history (migration 0092): raw samples below one-hour
steps, the department's hourly counts (``department_seat_hourly``, 0094) from one hour.
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

# Occupied machines per (department, UTC hour): the sum of the machines' occupied shares, kept per
# department and hour by migration 0094 (720 rows per department and 30 days).
DEPARTMENT_HOURS = sql.SQL("""
    SELECT department, bucket, occupied FROM department_hourly
    WHERE bucket >= %(lower)s AND bucket < %(end)s {where}""")

# Per machine: occupied and up hours weighted by the open share of each hour; "up" is the share of
# the hour's samples against the most any machine delivered in that hour (the scrape cadence).
MACHINE_HOURS = sql.SQL("""
    WITH w AS (
        SELECT * FROM unnest(%(wd)s::text[], %(wb)s::timestamptz[], %(ww)s::float8[]) AS w(department, bucket, weight)
        WHERE weight > 0),
    a AS MATERIALIZED (
        SELECT system_id, bucket, occupied_ratio, samples FROM usage_hourly
        WHERE bucket >= %(lower)s AND bucket < %(end)s),
    most AS (SELECT bucket, max(samples)::float8 AS most FROM a GROUP BY bucket),
    per AS (
        SELECT a.system_id, sum(w.weight * a.occupied_ratio)::float8 AS occupied_hours,
            sum(w.weight * a.samples / most.most)::float8 AS up_hours
        FROM a JOIN systems s ON s.id = a.system_id
        JOIN w ON w.department = s.department AND w.bucket = a.bucket
        JOIN most ON most.bucket = a.bucket
        GROUP BY a.system_id)
    SELECT s.id, s.instance, s.hostname, s.department, coalesce(per.occupied_hours, 0) AS occupied_hours,
        coalesce(per.up_hours, 0) AS up_hours
    FROM systems s LEFT JOIN per ON per.system_id = s.id
    WHERE s.department IS NOT NULL {where}
    ORDER BY s.department, s.id""")

# History: occupied machines per step bucket (usage source chosen like a series), and machines in
# each seat state (average over the bucket: each machine's share of samples in that state).
HISTORY_RAW = sql.SQL("""
    WITH per AS (
        SELECT date_bin(%(step)s, m.timestamp, %(origin)s) AS b, m.system_id,
            avg((m.logged_in_users > 0)::int)::float8 AS occ
        FROM usage_metrics m JOIN systems s ON s.id = m.system_id
        WHERE s.department = %(department)s AND m.timestamp >= %(start)s AND m.timestamp < %(end)s
        GROUP BY 1, 2)
    SELECT b, sum(occ)::float8 AS occupied FROM per GROUP BY b ORDER BY b""")
# From one-hour steps: the department's hourly rows (0094), averaged over the hours of each step.
HISTORY_AGG = sql.SQL("""
    SELECT date_bin(%(step)s, bucket, %(origin)s) AS b, avg(occupied)::float8 AS occupied
    FROM department_hourly
    WHERE department = %(department)s AND bucket >= date_bin(INTERVAL '1 hour', %(start)s, %(origin)s)
      AND bucket < %(end)s
    GROUP BY 1 ORDER BY 1""")
HISTORY_STATES = sql.SQL("""
    WITH per AS (
        SELECT date_bin(%(step)s, h.timestamp, %(origin)s) AS b, h.system_id, h.state, count(*) AS n
        FROM seat_history h JOIN systems s ON s.id = h.system_id
        WHERE s.department = %(department)s AND h.timestamp >= %(start)s AND h.timestamp < %(end)s
        GROUP BY 1, 2, 3),
    total AS (SELECT b, system_id, sum(n) AS n FROM per GROUP BY 1, 2)
    SELECT per.b, per.state, sum(per.n::float8 / total.n)::float8 AS machines
    FROM per JOIN total USING (b, system_id) GROUP BY 1, 2""")
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
    machines = {r["department"]: r["machines"] for r in db.fetch_all(
        MACHINES.format(where="AND department = %(department)s" if one else ""), values)}
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
    rows = [{**utilisation.department_report(dept, hours.weights(_opening(name), start, end)),
             "timezone": hours.timezone_of(_opening(name))}
            for name, dept in _department_hours(None, start, end).items()]
    body = {"start": start, "end": end, "items": rows,
            "over_subscribed": [r["department"] for r in rows if r["over_subscribed"]],
            "underused": [r["department"] for r in rows if r["underused"]]}
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
    wd: list[str] = []
    wb: list[datetime] = []
    ww: list[float] = []
    open_hours: dict[str, float] = {}
    for name in names:
        opening = _opening(name)
        weights = [(b, hours.weight(opening, b)) for b in buckets]
        open_hours[name] = sum(w for _, w in weights)
        for bucket, weight in weights:
            wd.append(name)
            wb.append(bucket)
            ww.append(weight)
    where = sql.SQL("AND s.department = %(department)s" if department is not None else "")
    rows = db.fetch_all(MACHINE_HOURS.format(where=where), {
        "wd": wd, "wb": wb, "ww": ww, "lower": buckets[0], "end": end, "department": department})
    machines = [utilisation.MachineHours(r["id"], r["instance"], r["hostname"], r["department"],
                                         r["occupied_hours"], r["up_hours"]) for r in rows]
    items = utilisation.machine_report(machines, open_hours)
    body = {"start": start, "end": end, "items": items,
            "hot_seats": [r["system_id"] for r in items if r["hot_seat"]]}
    return tabular.respond(body, "items", "machines")


def heatmap_body(department: str, start: datetime, end: datetime) -> dict[str, Any]:
    dept = _department_hours(department, start, end)[department]
    opening = _opening(department)
    zone = hours.timezone_of(opening)
    cells = utilisation.heatmap(dept, hours.weights(opening, start, end), zone)
    return {"department": department, "start": start, "end": end, "timezone": zone,
            "machines": dept.machines, "opening_hours": hours.describe(opening), "cells": cells}


def history_body(department: str, machines: int, start: datetime, end: datetime,
                 step: timedelta | None) -> dict[str, Any]:
    app = state()
    chosen = series.plan(start, end, step, app.config.max_points)
    values = {"department": department, "start": start, "end": end, "origin": series.ORIGIN,
              "step": timedelta(seconds=chosen.step_seconds),
              "resolution": timedelta(seconds=series.RESOLUTION[chosen.source])}
    query = HISTORY_RAW if chosen.source == "raw" else HISTORY_AGG
    with app.db.connection() as conn:
        occupied = {r["b"]: r["occupied"] for r in conn.execute(query, values)}
        states: dict[datetime, dict[str, float]] = {}
        for r in conn.execute(HISTORY_STATES if chosen.source == "raw" else HISTORY_STATES_HOURLY, values):
            states.setdefault(r["b"], {})[r["state"]] = r["machines"]
    points = []
    for bucket in sorted(set(occupied) | set(states)):
        counts = states.get(bucket, {})
        used = occupied.get(bucket)
        points.append({"t": bucket, "occupied": None if used is None else round(used, 4),
                       "utilisation_ratio": None if used is None or not machines else round(used / machines, 6),
                       "states": {s: round(counts.get(s, 0.0), 4) for s in seats.STATES}})
    return {"department": department, "start": start, "end": end, "machines": machines,
            "source": chosen.source, "step_seconds": chosen.step_seconds, "points": points}


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
    return tabular.respond(history_body(department, machines, start, end, step), "points",
                           f"history-{department}")
