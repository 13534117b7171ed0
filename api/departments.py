"""``/departments``: per department, machines up/down and in use/free now, utilization over a range.

"Now" reads each machine's newest usage row (if younger than the freshness window) and its status.
"Over a range" reads the source `series.range_source` picks and reports averages weighted by sample
counts, the occupancy ratio (share of machine-samples with someone logged in) and the average and
peak number of machines in use per bucket (hour, or day for long ranges).
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
        SELECT s.department, s.status, u.cpu_usage, u.ram_usage, u.disk_usage, u.logged_in_users,
            {seat_column} AS seat_state
        FROM systems s LEFT JOIN LATERAL (
            SELECT m.cpu_usage, m.ram_usage, m.disk_usage, m.logged_in_users FROM usage_metrics m
            WHERE m.system_id = s.id AND m.timestamp > %(fresh_since)s AND m.timestamp <= %(now)s
            ORDER BY m.timestamp DESC LIMIT 1) u ON true
        {seat}
        WHERE {where})
    SELECT department, count(*) AS machines,
        count(*) FILTER (WHERE status = 'online') AS up,
        count(*) FILTER (WHERE status IS DISTINCT FROM 'online') AS down,
        count(*) FILTER (WHERE status = 'online' AND logged_in_users > 0) AS in_use,
        avg(cpu_usage) FILTER (WHERE status = 'online') AS avg_cpu,
        max(cpu_usage) FILTER (WHERE status = 'online') AS peak_cpu,
        avg(ram_usage) FILTER (WHERE status = 'online') AS avg_ram,
        avg(disk_usage) FILTER (WHERE status = 'online') AS avg_disk,
        {seat_counts}
    FROM latest GROUP BY department ORDER BY department NULLS LAST""")

# Per (system, bucket) rows from any source are summed per (department, bucket) — machines in use
# per bucket is the sum of the machines' occupied shares — then reduced per department: weighted
# averages from the sums, peaks, and the average and peak of machines in use. Two passes, no join.
RANGE_QUERY = sql.SQL("""
    WITH per AS ({per}),
    by_bucket AS (
        SELECT department, b,
            sum(cpu * n) AS cpu_w, sum(n) FILTER (WHERE cpu IS NOT NULL) AS cpu_n, max(cpu_max) AS cpu_max,
            sum(ram * n) AS ram_w, sum(n) FILTER (WHERE ram IS NOT NULL) AS ram_n,
            sum(disk * n) AS disk_w, sum(n) FILTER (WHERE disk IS NOT NULL) AS disk_n,
            sum(occ * n) AS occ_w, sum(n) FILTER (WHERE occ IS NOT NULL) AS occ_n,
            sum(occ) AS machines, sum(n) AS n
        FROM per GROUP BY department, b)
    SELECT department,
        sum(cpu_w) / nullif(sum(cpu_n), 0) AS avg_cpu, max(cpu_max) AS peak_cpu,
        sum(ram_w) / nullif(sum(ram_n), 0) AS avg_ram, sum(disk_w) / nullif(sum(disk_n), 0) AS avg_disk,
        sum(occ_w) / nullif(sum(occ_n), 0) AS occupancy_ratio,
        avg(machines)::float8 AS in_use_avg, max(machines)::float8 AS in_use_peak, sum(n)::bigint AS samples
    FROM by_bucket GROUP BY department""")

PER_RAW = sql.SQL("""
    SELECT s.department, m.system_id, date_bin('1 hour', m.timestamp, %(origin)s) AS b,
        avg(m.cpu_usage) AS cpu, max(m.cpu_usage) AS cpu_max, avg(m.ram_usage) AS ram,
        avg(m.disk_usage) AS disk, avg((m.logged_in_users > 0)::int)::float8 AS occ, count(*) AS n
    FROM systems s JOIN usage_metrics m ON m.system_id = s.id
    WHERE m.timestamp >= %(start)s AND m.timestamp < %(end)s AND {where}
    GROUP BY s.department, m.system_id, b""")

# The aggregate rows are read first (MATERIALIZED), then joined to systems: planned as one join, the
# aggregate views' estimates led PostgreSQL to a nested loop that compared every row with every system.
PER_AGG = sql.SQL("""
    WITH a AS MATERIALIZED (
        SELECT system_id, bucket, avg_cpu, max_cpu, avg_ram, avg_disk, occupied_ratio, samples FROM {table}
        WHERE bucket >= date_bin(%(resolution)s, %(start)s, %(origin)s) AND bucket < %(end)s)
    SELECT s.department, a.system_id, a.bucket AS b, a.avg_cpu AS cpu, a.max_cpu AS cpu_max,
        a.avg_ram AS ram, a.avg_disk AS disk, a.occupied_ratio AS occ, a.samples AS n
    FROM a JOIN systems s ON s.id = a.system_id
    WHERE {where}""")


SEAT_COUNTS = sql.SQL(", ").join(
    sql.SQL("count(*) FILTER (WHERE seat_state = {}) AS {}").format(sql.Literal(name), sql.Identifier("seat_" + name))
    for name in seats.STATES)


def _now_query(department: str | None) -> sql.Composed:
    return NOW_QUERY.format(where=_where(department), seat=seats.SEAT_JOIN, seat_column=seats.SEAT_COLUMN,
                            seat_counts=SEAT_COUNTS)


def _where(department: str | None) -> sql.Composable:
    return sql.SQL("s.department = %(department)s") if department is not None else sql.SQL("TRUE")


def _range_query(source: str, department: str | None) -> sql.Composed:
    where = _where(department)
    if source == "raw":
        per = PER_RAW.format(where=where)
    else:
        per = PER_AGG.format(table=sql.Identifier(series.TABLES[source]), where=where)
    return RANGE_QUERY.format(per=per)


def summarize(department: str | None, start: datetime, end: datetime) -> tuple[str, list[dict[str, Any]]]:
    """Department rows (now + range) for one department or all; returns (range source, rows)."""
    app = state()
    now = app.clock()
    source = series.range_source(start, end)
    values = {
        "department": department, "now": now,
        "fresh_since": now - timedelta(seconds=app.config.fresh_window_s),
        "start": start, "end": end, "origin": series.ORIGIN,
        "resolution": timedelta(seconds=series.RESOLUTION[source]),
        **seats.fresh_since(now),
    }
    with app.db.connection() as conn:
        current = conn.execute(_now_query(department), values).fetchall()
        ranged = {r["department"]: r for r in conn.execute(_range_query(source, department), values)}
    return source, [_department_json(row, ranged.get(row["department"])) for row in current]


def _department_json(now_row: dict[str, Any], range_row: dict[str, Any] | None) -> dict[str, Any]:
    range_row = range_row or {}
    return {
        "name": now_row["department"],
        "machines": now_row["machines"], "up": now_row["up"], "down": now_row["down"],
        "now": {
            "in_use": now_row["in_use"], "free": now_row["up"] - now_row["in_use"],
            "avg_cpu": now_row["avg_cpu"], "peak_cpu": now_row["peak_cpu"],
            "avg_ram": now_row["avg_ram"], "avg_disk": now_row["avg_disk"],
            "seats": {name: now_row["seat_" + name] for name in seats.STATES},
        },
        "range": {key: range_row.get(key) for key in (
            "avg_cpu", "peak_cpu", "avg_ram", "avg_disk", "occupancy_ratio", "in_use_avg", "in_use_peak")}
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
    machines = state().db.fetch_all(sql.SQL(
        "SELECT {}, {} AS seat_state, {} FROM systems s {} {} WHERE s.department = %(department)s ORDER BY s.id"
    ).format(SYSTEM_COLUMNS, seats.SEAT_COLUMN, LATEST_COLUMNS, seats.SEAT_JOIN, LATEST),
        {"department": department, **seats.fresh_since()})
    return {"start": start, "end": end, "source": source, **rows[0],
            "systems": [system_json(m) for m in machines]}
