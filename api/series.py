"""Which table answers a time-series request, at which step, and the SQL that reads it.

A request names a range and maybe a step. The step is what the client can see, so the rule is:
read the coarsest source whose resolution is not coarser than the step (raw rows below one hour,
`usage_hourly` from one hour, `usage_daily` from one day), and never return more than `max_points`
buckets — a step that would is raised to the next "nice" step. Without a step the API aims for about
`DEFAULT_POINTS` buckets, which sends 30-day requests to the hourly aggregate instead of 43,200 raw rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import sql

DEFAULT_POINTS = 300
MIN_AUTO_STEP = 15
HOUR, DAY = 3600, 86400
SOURCES = ("raw", "hourly", "daily")
TABLES = {"hourly": "usage_hourly", "daily": "usage_daily"}
RESOLUTION = {"raw": 1, "hourly": HOUR, "daily": DAY}
NICE_STEPS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
    30 * DAY,
    60 * DAY,
    90 * DAY,
)
# Buckets line up on UTC midnights (and 2000-01-01, a Saturday, for multi-day steps).
ORIGIN = datetime.fromisoformat("2000-01-01T00:00:00+00:00")


@dataclass(frozen=True)
class Plan:
    source: str
    step_seconds: int


def nice_step(seconds: float) -> int:
    """The smallest nice step of at least ``seconds`` (a multiple of 90 days beyond the table)."""
    for step in NICE_STEPS:
        if step >= seconds:
            return step
    return math.ceil(seconds / NICE_STEPS[-1]) * NICE_STEPS[-1]


def plan(start: datetime, end: datetime, step: timedelta | None, max_points: int, source: str | None = None) -> Plan:
    """Choose source and step for ``[start, end)``; ``source`` forces a table (benchmarks, clients)."""
    span = (end - start).total_seconds()
    floor = span / max_points
    if step is None:
        seconds = nice_step(max(span / min(DEFAULT_POINTS, max_points), MIN_AUTO_STEP))
    else:
        seconds = int(step.total_seconds())
        if seconds < floor:
            seconds = nice_step(floor)
    if source is None:
        source = "daily" if seconds >= DAY else "hourly" if seconds >= HOUR else "raw"
    resolution = RESOLUTION[source]
    seconds = math.ceil(seconds / resolution) * resolution
    return Plan(source, seconds)


def _weighted(column: str) -> sql.Composable:
    """Average of per-bucket averages weighted by their sample counts (exact re-aggregation)."""
    col = sql.Identifier(column)
    return sql.SQL("sum({c} * samples) / nullif(sum(samples) FILTER (WHERE {c} IS NOT NULL), 0)").format(c=col)


RAW_COLUMNS = sql.SQL("""
    avg(cpu_usage) AS cpu, max(cpu_usage) AS cpu_max, avg(ram_usage) AS ram, avg(disk_usage) AS disk,
    avg(logged_in_users)::float8 AS users, avg((logged_in_users > 0)::int)::float8 AS occupied,
    count(*) AS samples""")

AGG_COLUMNS = sql.SQL("""
    {cpu} AS cpu, max(max_cpu) AS cpu_max, {ram} AS ram, {disk} AS disk,
    {users}::float8 AS users, {occupied}::float8 AS occupied, sum(samples)::bigint AS samples""").format(
    cpu=_weighted("avg_cpu"),
    ram=_weighted("avg_ram"),
    disk=_weighted("avg_disk"),
    users=_weighted("avg_users"),
    occupied=_weighted("occupied_ratio"),
)


def source_table(source: str) -> tuple[sql.Identifier, sql.Identifier, sql.Composable]:
    """(table, time column, aggregate column list) for one source name."""
    if source == "raw":
        return sql.Identifier("usage_metrics"), sql.Identifier("timestamp"), RAW_COLUMNS
    return sql.Identifier(TABLES[source]), sql.Identifier("bucket"), AGG_COLUMNS


def series_query(source: str) -> sql.Composed:
    """Bucketed series of one system. Parameters: system_id, step (interval), origin, start, end.

    Aggregate rows are selected by bucket start, so a request starting mid-hour includes that hour.
    """
    table, time_col, columns = source_table(source)
    lower = sql.SQL("date_bin(%(resolution)s, %(start)s, %(origin)s)")
    return sql.SQL("""
        SELECT date_bin(%(step)s, {t}, %(origin)s) AS t, {columns}
        FROM {table}
        WHERE system_id = %(system_id)s AND {t} >= {lower} AND {t} < %(end)s
        GROUP BY 1 ORDER BY 1""").format(t=time_col, columns=columns, table=table, lower=lower)


def series_params(system_id: int, start: datetime, end: datetime, chosen: Plan) -> dict[str, object]:
    return {
        "system_id": system_id,
        "start": start,
        "end": end,
        "origin": ORIGIN,
        "step": timedelta(seconds=chosen.step_seconds),
        "resolution": timedelta(seconds=RESOLUTION[chosen.source]),
    }


def range_source(start: datetime, end: datetime) -> str:
    """Source for whole-range statistics over many systems (department summaries).

    Up to 3 hours raw rows are cheap and exact; up to 3 days hourly; beyond, daily buckets.
    """
    span = (end - start).total_seconds()
    return "raw" if span <= 3 * HOUR else "hourly" if span <= 3 * DAY else "daily"
