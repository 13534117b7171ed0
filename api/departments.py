"""``/departments``: per department, machines up/down, seats in use/free now, utilization over a range.

Occupied means one thing here as in every report (docs/api.md): a seat somebody sits at, i.e. its
seat state is ``in_use``, ``idle`` or ``locked``; a machine with only a remote SSH login is free.

"Now" reads each machine's current seat state the way the board does (``api.seats``: the newest seat
sample younger than the freshness window), and its newest usage row for the resource gauges.
``now.in_use`` counts the machines in occupied states, ``now.free`` those whose seat is free; a
machine without seat data (an older exporter, or seat collection off) is in neither.
"Over a range" reads the resource gauges from the source `series.range_source` picks (averages
weighted by sample counts) and the occupancy from the seat-based ``department_hourly`` rows the
reports read (occupied machines per UTC hour; dirty hours answered live): the average and peak
occupied machines per hour, and the occupancy ratio = average occupied ÷ machines with seat data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, request
from psycopg import sql
from werkzeug.exceptions import NotFound

from optilab.api import params, seats, series, tabular
from optilab.api.context import state
from optilab.api.systems import LATEST, LATEST_COLUMNS, SYSTEM_COLUMNS, system_json

bp = Blueprint("departments", __name__)

NOW_QUERY = sql.SQL("""
    WITH latest AS (
        SELECT s.department, s.status, u.cpu_usage, u.ram_usage, u.disk_usage, {seat_column} AS seat_state
        FROM systems s LEFT JOIN LATERAL (
            SELECT m.cpu_usage, m.ram_usage, m.disk_usage FROM usage_metrics m
            WHERE m.system_id = s.id AND m.timestamp > %(fresh_since)s AND m.timestamp <= %(now)s
            ORDER BY m.timestamp DESC LIMIT 1) u ON true
        {seat}
        WHERE {where})
    SELECT department, count(*) AS machines,
        count(*) FILTER (WHERE status = 'online') AS up,
        count(*) FILTER (WHERE status IS DISTINCT FROM 'online') AS down,
        avg(cpu_usage) FILTER (WHERE status = 'online') AS avg_cpu,
        max(cpu_usage) FILTER (WHERE status = 'online') AS peak_cpu,
        avg(ram_usage) FILTER (WHERE status = 'online') AS avg_ram,
        avg(disk_usage) FILTER (WHERE status = 'online') AS avg_disk,
        {seat_counts}
    FROM latest GROUP BY department ORDER BY department NULLS LAST""")

# Per (system, bucket) rows from any source are reduced per department: averages weighted by the
# sample counts, peaks. One pass, no join.
RANGE_QUERY = sql.SQL("""
    WITH per AS ({per})
    SELECT department,
        sum(cpu * n) / nullif(sum(n) FILTER (WHERE cpu IS NOT NULL), 0) AS avg_cpu, max(cpu_max) AS peak_cpu,
        sum(ram * n) / nullif(sum(n) FILTER (WHERE ram IS NOT NULL), 0) AS avg_ram,
        sum(disk * n) / nullif(sum(n) FILTER (WHERE disk IS NOT NULL), 0) AS avg_disk,
        sum(n)::bigint AS samples
    FROM per GROUP BY department""")

# Occupancy over the range from the seat-based rows the reports read (department_hourly, 0096/0097:
# occupied machines per department and UTC hour, the hours still marked dirty answered live): every
# hour overlapping the range that has seat data. Machines with seat data = those with a seat series;
# a department without any has no rows here, so its occupancy fields are null, not 0.
OCCUPANCY_QUERY = sql.SQL("""
    WITH h AS (
        SELECT department, occupied FROM department_hourly
        WHERE bucket >= date_bin(INTERVAL '1 hour', %(start)s, %(origin)s) AND bucket < %(end)s {where}),
    seated AS (
        SELECT s.department, count(*) AS machines FROM systems s JOIN seat_series ss ON ss.system_id = s.id
        WHERE {system_where} GROUP BY s.department)
    SELECT h.department, avg(h.occupied)::float8 AS in_use_avg, max(h.occupied)::float8 AS in_use_peak,
        (avg(h.occupied) / nullif(seated.machines, 0))::float8 AS occupancy_ratio
    FROM h LEFT JOIN seated USING (department)
    GROUP BY h.department, seated.machines""")

PER_RAW = sql.SQL("""
    SELECT s.department, m.system_id, date_bin('1 hour', m.timestamp, %(origin)s) AS b,
        avg(m.cpu_usage) AS cpu, max(m.cpu_usage) AS cpu_max, avg(m.ram_usage) AS ram,
        avg(m.disk_usage) AS disk, count(*) AS n
    FROM systems s JOIN usage_metrics m ON m.system_id = s.id
    WHERE m.timestamp >= %(start)s AND m.timestamp < %(end)s AND {where}
    GROUP BY s.department, m.system_id, b""")

# The aggregate rows are read first (MATERIALIZED), then joined to systems: planned as one join, the
# aggregate views' estimates led PostgreSQL to a nested loop that compared every row with every system.
PER_AGG = sql.SQL("""
    WITH a AS MATERIALIZED (
        SELECT system_id, bucket, avg_cpu, max_cpu, avg_ram, avg_disk, samples FROM {table}
        WHERE bucket >= date_bin(%(resolution)s, %(start)s, %(origin)s) AND bucket < %(end)s)
    SELECT s.department, a.system_id, a.bucket AS b, a.avg_cpu AS cpu, a.max_cpu AS cpu_max,
        a.avg_ram AS ram, a.avg_disk AS disk, a.samples AS n
    FROM a JOIN systems s ON s.id = a.system_id
    WHERE {where}""")


SEAT_COUNTS = sql.SQL(", ").join(
    sql.SQL("count(*) FILTER (WHERE seat_state = {}) AS {}").format(sql.Literal(name), sql.Identifier("seat_" + name))
    for name in seats.STATES
)


def _now_query(department: str | None) -> sql.Composed:
    return NOW_QUERY.format(
        where=_where(department), seat=seats.SEAT_JOIN, seat_column=seats.SEAT_COLUMN, seat_counts=SEAT_COUNTS
    )


def _where(department: str | None) -> sql.Composable:
    return sql.SQL("s.department = %(department)s") if department is not None else sql.SQL("TRUE")


def _range_query(source: str, department: str | None) -> sql.Composed:
    where = _where(department)
    if source == "raw":
        per = PER_RAW.format(where=where)
    else:
        per = PER_AGG.format(table=sql.Identifier(series.TABLES[source]), where=where)
    return RANGE_QUERY.format(per=per)


def _occupancy_query(department: str | None) -> sql.Composed:
    where = sql.SQL("AND department = %(department)s" if department is not None else "AND department IS NOT NULL")
    return OCCUPANCY_QUERY.format(where=where, system_where=_where(department))


def summarize(department: str | None, start: datetime, end: datetime) -> tuple[str, list[dict[str, Any]]]:
    """Department rows (now + range) for one department or all; returns (range source, rows)."""
    app = state()
    now = app.clock()
    source = series.range_source(start, end)
    values = {
        "department": department,
        "now": now,
        "fresh_since": now - timedelta(seconds=app.config.fresh_window_s),
        "start": start,
        "end": end,
        "origin": series.ORIGIN,
        "resolution": timedelta(seconds=series.RESOLUTION[source]),
        **seats.fresh_since(now),
    }
    with app.db.connection() as conn:
        current = conn.execute(_now_query(department), values).fetchall()
        ranged = {r["department"]: r for r in conn.execute(_range_query(source, department), values)}
        occupancy = {r["department"]: r for r in conn.execute(_occupancy_query(department), values)}
    return source, [
        _department_json(row, {**ranged.get(row["department"], {}), **occupancy.get(row["department"], {})})
        for row in current
    ]


def _department_json(now_row: dict[str, Any], range_row: dict[str, Any]) -> dict[str, Any]:
    seat_counts = {name: now_row["seat_" + name] for name in seats.STATES}
    return {
        "name": now_row["department"],
        "machines": now_row["machines"],
        "up": now_row["up"],
        "down": now_row["down"],
        "now": {  # from the seat states, as now.seats and the board: no seat data, neither in use nor free
            "in_use": sum(seat_counts[name] for name in seats.OCCUPIED),
            "free": seat_counts["free"],
            "avg_cpu": now_row["avg_cpu"],
            "peak_cpu": now_row["peak_cpu"],
            "avg_ram": now_row["avg_ram"],
            "avg_disk": now_row["avg_disk"],
            "seats": seat_counts,
        },
        "range": {
            key: range_row.get(key)
            for key in ("avg_cpu", "peak_cpu", "avg_ram", "avg_disk", "occupancy_ratio", "in_use_avg", "in_use_peak")
        }
        | {"samples": range_row.get("samples") or 0},
    }


@bp.get("/departments")
@params.accepts("start", "end", "format")
def list_departments() -> Any:
    args = request.args.to_dict()
    start, end = params.time_range(args, state().clock(), timedelta(hours=24))
    source, rows = summarize(None, start, end)
    return tabular.respond({"start": start, "end": end, "source": source, "items": rows}, "items", "departments")


@bp.get("/departments/<name>")
@params.accepts("start", "end")
def get_department(name: str) -> dict[str, Any]:
    """One department's summary plus its machines (with latest usage)."""
    department = params.text({"name": name}, "name")
    args = request.args.to_dict()
    start, end = params.time_range(args, state().clock(), timedelta(hours=24))
    source, rows = summarize(department, start, end)
    if not rows:
        raise NotFound(f"department {name!r} not found")
    machines = state().db.fetch_all(
        sql.SQL(
            "SELECT {}, {} AS seat_state, {} FROM systems s {} {} WHERE s.department = %(department)s ORDER BY s.id"
        ).format(SYSTEM_COLUMNS, seats.SEAT_COLUMN, LATEST_COLUMNS, seats.SEAT_JOIN, LATEST),
        {"department": department, **seats.fresh_since()},
    )
    return {"start": start, "end": end, "source": source, **rows[0], "systems": [system_json(m) for m in machines]}
