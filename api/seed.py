"""Generated lab history for tests, the benchmark and the demo: systems in departments, usage rows,
status history and alerts, written straight into a migrated database.

Usage rows are generated inside PostgreSQL (``generate_series``), so 10 million rows load in about a
minute instead of streaming them from Python. Values follow a daily rhythm (busy afternoons, quiet
nights) with noise, so aggregates, occupancy and peaks have something real to find. After loading,
the aggregates are refreshed the way the storage mode does it (rollup refresh on plain PostgreSQL,
``refresh_continuous_aggregate`` on TimescaleDB). Loopback addresses only (127.0.x.y).

``python -m optilab.api.seed --dsn DSN --systems 30 --days 3`` seeds a database for a demo.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

log = logging.getLogger(__name__)

DEPARTMENTS = ("physics", "chemistry", "biology", "informatics", "mathematics")
HOUR = timedelta(hours=1)

USAGE_INSERT = """
INSERT INTO usage_metrics (system_id, timestamp, cpu_usage, ram_usage, disk_usage, logged_in_users)
SELECT s.id, t,
    least(100, greatest(0, 35 + 30 * sin(2 * pi() * (extract(epoch FROM t) / 86400 + s.id * 0.07))
                            + 15 * random())),
    least(100, greatest(0, 45 + 15 * sin(2 * pi() * (extract(epoch FROM t) / 86400 + s.id * 0.05))
                            + 5 * random())),
    20 + (s.id %% 50) + extract(epoch FROM t - %(start)s) / 86400 * 0.1,
    CASE WHEN random() < 0.15 + 0.6 * greatest(0, sin(2 * pi() * (extract(epoch FROM t) / 86400 - 0.3)))
         THEN 1 + (random() * 2)::int ELSE 0 END
FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - %(step)s, %(step)s) AS t
CROSS JOIN (SELECT id FROM systems WHERE id = ANY(%(ids)s) ORDER BY id) AS s
"""


# Seat states as the bridge stores them (mapping.py folds optilab_seat_state into one coded series per
# machine): derived from the usage row of the same minute — nobody logged in: free (0); logged in:
# mostly in use (1), one row in ten idle (2), one in twenty locked (3), one in twenty a remote SSH
# session only, so the seat is free (0) although usage counts a login; offline machines' last 6 h: 4.
SEAT_SERIES = """
INSERT INTO series (metric, labels)
SELECT 'optilab_seat_state', jsonb_build_object('instance', instance) FROM systems WHERE id = ANY(%(ids)s)
ON CONFLICT (metric, labels) DO NOTHING
"""
SEAT_INSERT = """
INSERT INTO samples (series_id, timestamp, value)
SELECT se.id, m.timestamp,
    CASE WHEN sy.status = 'offline' AND m.timestamp > %(offline_since)s THEN 4
         WHEN m.logged_in_users = 0 THEN 0
         WHEN (extract(epoch FROM m.timestamp)::bigint / 60 + sy.id) %% 20 = 0 THEN 3
         WHEN (extract(epoch FROM m.timestamp)::bigint / 60 + sy.id) %% 20 = 7 THEN 0
         WHEN (extract(epoch FROM m.timestamp)::bigint / 60 + sy.id) %% 10 IN (1, 2) THEN 2
         ELSE 1 END
FROM usage_metrics m JOIN systems sy ON sy.id = m.system_id
JOIN series se ON se.metric = 'optilab_seat_state' AND se.labels ->> 'instance' = sy.instance
WHERE m.system_id = ANY(%(ids)s) AND m.timestamp >= %(start)s AND m.timestamp < %(end)s
ON CONFLICT (series_id, timestamp) DO NOTHING
"""


@dataclass(frozen=True)
class SeedResult:
    storage_mode: str
    system_ids: list[int]
    usage_rows: int
    alerts: int


def storage_mode(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT storage_mode()").fetchone()
    assert row is not None  # a SELECT of a function returns one row
    return row[0]


def add_systems(
    conn: psycopg.Connection,
    count: int,
    departments: Sequence[str] = DEPARTMENTS,
    now: datetime | None = None,
    first: int = 0,
) -> list[int]:
    """``count`` machines spread round-robin over ``departments``; every 9th is offline.

    Health states follow status (offline machines are ``offline`` or ``dead``; every
    7th online machine is ``degraded``) so filters have all values to find.
    """
    now = now or datetime.now(UTC)
    rows = []
    for n in range(first, first + count):
        department = departments[n % len(departments)]
        ip = f"127.0.{1 + n // 250}.{1 + n % 250}"
        online = n % 9 != 8
        if online:
            health = "degraded" if n % 7 == 3 else "healthy"
        else:
            health = "dead" if n % 4 == 0 else "offline"
        rows.append(
            (
                f"{ip}:22",
                f"{department[:4]}-{n:03d}",
                ip,
                department,
                "Linux",
                "6.1.0",
                "online" if online else "offline",
                health,
                now if online else now - timedelta(hours=6),
            )
        )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO systems (instance, hostname, ip_address, department, os_type, os_version, status,"
            " health_state, last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            rows,
            returning=True,
        )
        ids = []
        while True:
            row = cur.fetchone()
            assert row is not None  # each INSERT ... RETURNING result set holds its one row
            ids.append(row[0])
            if not cur.nextset():
                break
    return ids


def add_usage(
    conn: psycopg.Connection,
    system_ids: Sequence[int],
    start: datetime,
    end: datetime,
    step: timedelta = timedelta(minutes=1),
) -> int:
    """Generated usage rows for ``[start, end)``, one day per statement (bounded memory, progress)."""
    if storage_mode(conn) == "postgresql":
        conn.execute("SELECT optilab_ensure_partitions(%s, %s)", (start.date(), end.date()))
    total = 0
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(chunk_start + timedelta(days=1), end)
        total += conn.execute(
            USAGE_INSERT, {"start": chunk_start, "end": chunk_end, "step": step, "ids": list(system_ids)}
        ).rowcount
        chunk_start = chunk_end
    return total


def add_seats(
    conn: psycopg.Connection, system_ids: Sequence[int], start: datetime, end: datetime, now: datetime
) -> int:
    """Seat-state samples for ``[start, end)`` from the usage rows already there, one day per statement."""
    ids = list(system_ids)
    conn.execute(SEAT_SERIES, {"ids": ids})
    total, chunk_start = 0, start
    while chunk_start < end:
        chunk_end = min(chunk_start + timedelta(days=1), end)
        total += conn.execute(
            SEAT_INSERT, {"ids": ids, "start": chunk_start, "end": chunk_end, "offline_since": now - timedelta(hours=6)}
        ).rowcount
        chunk_start = chunk_end
    return total


def refresh_aggregates(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Bring usage_hourly/usage_daily up to date for ``[start, end)`` on an autocommit connection."""
    if storage_mode(conn) == "postgresql":
        conn.execute(
            """INSERT INTO usage_rollup_dirty (bucket)
            SELECT generate_series(date_bin('1 hour', %s::timestamptz, TIMESTAMPTZ '2000-01-01 00:00+00'),
                                   %s::timestamptz, '1 hour')""",
            (start, end),
        )
        conn.execute("SELECT optilab_refresh_rollups()")
        return
    # TimescaleDB refreshes whole buckets only: widen the window to bucket boundaries.
    for view, width in (("usage_hourly", "1 hour"), ("usage_daily", "1 day")):
        conn.execute(
            f"""CALL refresh_continuous_aggregate(%s,
            date_bin('{width}', %s::timestamptz, TIMESTAMPTZ '2000-01-01 00:00+00'),
            date_bin('{width}', %s::timestamptz, TIMESTAMPTZ '2000-01-01 00:00+00') + INTERVAL '{width}')""",
            (view, start, end),
        )


def add_status_history(conn: psycopg.Connection, system_ids: Sequence[int], now: datetime) -> None:
    """A few transitions per machine in the last day (online → degraded → online)."""
    rows = []
    for n, system_id in enumerate(system_ids):
        base = now - timedelta(hours=20 - n % 12)
        rows += [
            (system_id, base, "online", "healthy", "discovered"),
            (system_id, base + timedelta(hours=2), "online", "degraded", "timeout"),
            (system_id, base + timedelta(hours=3), "online", "healthy", "recovered"),
        ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO status_history (system_id, timestamp, status, health_state, reason)"
            " VALUES (%s, %s, %s, %s, %s)",
            rows,
        )


def add_alerts(conn: psycopg.Connection, system_ids: Sequence[int], now: datetime) -> int:
    """Alerts of several kinds: every 3rd machine resolved HighCpu, every 5th still-firing DiskFull."""
    systems = {
        row[0]: row[1:]
        for row in conn.execute("SELECT id, instance, department FROM systems WHERE id = ANY(%s)", (list(system_ids),))
    }
    rows: list[tuple[str, str, str, datetime, datetime | None, int, str, str]] = []
    for n, system_id in enumerate(system_ids):
        instance, department = systems[system_id]
        if n % 3 == 0:
            rows.append(
                (
                    "HighCpuUsage",
                    "warning",
                    "resolved",
                    now - timedelta(hours=10 + n % 5),
                    now - timedelta(hours=9),
                    system_id,
                    instance,
                    department,
                )
            )
        if n % 5 == 0:
            rows.append(
                (
                    "DiskAlmostFull",
                    "critical",
                    "firing",
                    now - timedelta(hours=2 + n % 3),
                    None,
                    system_id,
                    instance,
                    department,
                )
            )
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO alerts (fingerprint, alertname, alert_type, severity, status, starts_at, ends_at,
                system_id, instance, department, message, labels, annotations, updated_at)
            VALUES (%s, %s, 'system', %s, %s, %s, %s, %s, %s, %s, %s, %s, '{}', %s)""",
            [
                (
                    f"{name}-{instance}",
                    name,
                    severity,
                    status,
                    starts,
                    ends,
                    sid,
                    instance,
                    dept,
                    f"{name} on {instance}",
                    json.dumps({"alertname": name, "instance": instance}),
                    ends or starts,
                )
                for name, severity, status, starts, ends, sid, instance, dept in rows
            ],
        )
    return len(rows)


def seed_lab(
    dsn: str,
    systems: int = 20,
    days: float = 2,
    step: timedelta = timedelta(minutes=1),
    now: datetime | None = None,
    departments: Sequence[str] = DEPARTMENTS,
) -> SeedResult:
    """A whole lab: machines, ``days`` of usage up to ``now``, history, alerts, refreshed aggregates."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = now - timedelta(days=days)
    with psycopg.connect(dsn, autocommit=True) as conn:
        mode = storage_mode(conn)
        ids = add_systems(conn, systems, departments, now)
        rows = add_usage(conn, ids, start, now + step, step)
        add_seats(conn, ids, start, now + step, now)
        refresh_aggregates(conn, start, now + HOUR)
        add_status_history(conn, ids, now)
        alerts = add_alerts(conn, ids, now)
        conn.execute("ANALYZE")
    log.info("seeded %d systems, %d usage rows, %d alerts (%s)", len(ids), rows, alerts, mode)
    return SeedResult(mode, ids, rows, alerts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optilab.api.seed", description="Seed a migrated database.")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--systems", type=int, default=30)
    parser.add_argument("--days", type=float, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO")
    result = seed_lab(args.dsn, args.systems, args.days)
    print(
        f"{len(result.system_ids)} systems, {result.usage_rows} usage rows, {result.alerts} alerts "
        f"({result.storage_mode})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
