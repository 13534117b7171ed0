"""``/systems``: the machines, one machine with its latest usage, and one machine's time series."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, request
from psycopg import sql
from werkzeug.exceptions import NotFound

from optilab.api import params, seats, series, tabular
from optilab.api.context import state

bp = Blueprint("systems", __name__)

MAX_ID = 2**31 - 1  # systems.id is a PostgreSQL integer; larger ids cannot exist
STATUSES = ("online", "offline")
HEALTH_STATES = ("healthy", "degraded", "offline", "dead")
SOURCES = ("auto", *series.SOURCES)

SYSTEM_COLUMNS = sql.SQL("""s.id, s.instance, s.hostname, s.ip_address, s.department, s.os_type,
    s.os_version, s.status, s.health_state, s.last_seen, s.created_at""")

# The newest usage row of each system: one backward probe of the (system_id, timestamp) primary key.
LATEST = sql.SQL("""LEFT JOIN LATERAL (
        SELECT m.timestamp, m.cpu_usage, m.ram_usage, m.disk_usage, m.logged_in_users
        FROM usage_metrics m WHERE m.system_id = s.id ORDER BY m.timestamp DESC LIMIT 1) u ON true""")
LATEST_COLUMNS = sql.SQL(
    "u.timestamp AS u_timestamp, u.cpu_usage AS u_cpu_usage, "
    "u.ram_usage AS u_ram_usage, u.disk_usage AS u_disk_usage, "
    "u.logged_in_users AS u_logged_in_users"
)


def system_json(row: dict[str, Any]) -> dict[str, Any]:
    """A system row with its ``latest`` usage folded into a nested object (null when none)."""
    system = {key: value for key, value in row.items() if not key.startswith("u_")}
    system.setdefault("seat_state", None)
    system["latest"] = (
        None
        if row.get("u_timestamp") is None
        else {
            "timestamp": row["u_timestamp"],
            "cpu_usage": row["u_cpu_usage"],
            "ram_usage": row["u_ram_usage"],
            "disk_usage": row["u_disk_usage"],
            "logged_in_users": row["u_logged_in_users"],
            "in_use": (row["u_logged_in_users"] or 0) > 0,
        }
    )
    return system


def _filters(args: dict[str, str]) -> tuple[sql.Composable, dict[str, Any]]:
    clauses: list[sql.Composable] = [sql.SQL("TRUE")]
    values: dict[str, Any] = seats.fresh_since()
    if (seat := params.choice(args, "state", seats.STATES, None)) is not None:
        clauses.append(sql.SQL("{} = %(state)s").format(seats.SEAT_COLUMN))
        values["state"] = seat
    if (department := params.text(args, "department")) is not None:
        clauses.append(sql.SQL("s.department = %(department)s"))
        values["department"] = department
    if (status := params.choice(args, "status", STATUSES, None)) is not None:
        clauses.append(sql.SQL("s.status = %(status)s"))
        values["status"] = status
    if (health := params.choice(args, "health", HEALTH_STATES, None)) is not None:
        clauses.append(sql.SQL("s.health_state = %(health)s"))
        values["health"] = health
    if q := params.text(args, "q"):
        clauses.append(sql.SQL("(s.hostname ILIKE %(q)s OR s.ip_address ILIKE %(q)s OR s.instance ILIKE %(q)s)"))
        values["q"] = params.like_pattern(q)
    return sql.SQL(" AND ").join(clauses), values


@bp.get("/systems")
@params.accepts("department", "status", "health", "state", "q", "limit", "offset", "format")
def list_systems() -> Any:
    """Filtered, paginated machines ordered by id; ``total`` counts all matches, not just this page.

    ``free_by_department`` counts the machines whose seat is ``free`` per department (all of them,
    whatever the filters), so a "where is a free machine" client needs one request."""
    args = request.args.to_dict()
    where, values = _filters(args)
    limit, offset = params.pagination(args)
    app = state()
    # the seat join only where the state filters; otherwise on the page's rows alone
    seat_in_filter = sql.SQL("") if "state" not in values else seats.SEAT_JOIN
    page = app.db.page(
        sql.SQL("SELECT count(*) AS n FROM systems s {seat} WHERE {where}").format(seat=seat_in_filter, where=where),
        sql.SQL("""
            SELECT {columns}, {seat_column} AS seat_state, {latest_columns} FROM (
                SELECT s.* FROM systems s {seat_filter}
                WHERE {where} ORDER BY s.id LIMIT %(limit)s OFFSET %(offset)s) s
            {seat} {latest} ORDER BY s.id""").format(
            columns=SYSTEM_COLUMNS,
            latest_columns=LATEST_COLUMNS,
            seat_filter=seat_in_filter,
            seat=seats.SEAT_JOIN,
            seat_column=seats.SEAT_COLUMN,
            where=where,
            latest=LATEST,
        ),
        values,
        limit,
        offset,
    )
    page["items"] = [system_json(row) for row in page["items"]]
    free = app.db.fetch_all(
        sql.SQL(
            "SELECT s.department, count(*) FILTER (WHERE {col} = 'free') AS free FROM systems s {seat} "
            "GROUP BY s.department ORDER BY s.department NULLS LAST"
        ).format(col=seats.SEAT_COLUMN, seat=seats.SEAT_JOIN),
        values,
    )
    page["free_by_department"] = {row["department"] or "": row["free"] for row in free}
    return tabular.respond(page, "items", "systems")


def _system(system_id: int) -> dict[str, Any]:
    if system_id > MAX_ID:
        raise NotFound(f"system {system_id} not found")
    row = state().db.fetch_one(
        sql.SQL("SELECT {}, {} AS seat_state, {} FROM systems s {} {} WHERE s.id = %(id)s").format(
            SYSTEM_COLUMNS, seats.SEAT_COLUMN, LATEST_COLUMNS, seats.SEAT_JOIN, LATEST
        ),
        {"id": system_id, **seats.fresh_since()},
    )
    if row is None:
        raise NotFound(f"system {system_id} not found")
    return system_json(row)


@bp.get("/systems/<int:system_id>")
@params.accepts()
def get_system(system_id: int) -> dict[str, Any]:
    """One machine, its latest usage and its last status/health transitions (newest first)."""
    system = _system(system_id)
    system["status_history"] = state().db.fetch_all(
        "SELECT timestamp, status, health_state, reason FROM status_history "
        "WHERE system_id = %s ORDER BY timestamp DESC LIMIT 20",
        (system_id,),
    )
    return system


@bp.get("/systems/<int:system_id>/metrics")
@params.accepts("start", "end", "step", "source")
def system_metrics(system_id: int) -> dict[str, Any]:
    """cpu/ram/disk/users of one machine in buckets; ``source`` says which table answered."""
    args = request.args.to_dict()
    app = state()
    start, end = params.time_range(args, app.clock(), timedelta(hours=24))
    step = params.duration(args["step"], "step") if args.get("step") else None
    forced = params.choice(args, "source", SOURCES, "auto")
    chosen = series.plan(start, end, step, app.config.max_points, None if forced == "auto" else forced)
    _system(system_id)
    rows = app.db.fetch_all(series.series_query(chosen.source), series.series_params(system_id, start, end, chosen))
    return {
        "system_id": system_id,
        "start": start,
        "end": end,
        "source": chosen.source,
        "step_seconds": chosen.step_seconds,
        "points": [_point(r) for r in rows],
    }


def _point(row: dict[str, Any]) -> dict[str, Any]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "t": row["t"],
        "cpu": rounded(row["cpu"]),
        "cpu_max": rounded(row["cpu_max"]),
        "ram": rounded(row["ram"]),
        "disk": rounded(row["disk"]),
        "users": rounded(row["users"]),
        "occupied": rounded(row["occupied"]),
        "samples": row["samples"],
    }
