"""optilab-migrate on the machine's PostgreSQL: the contract's tables and columns, reruns, two
runners at once, the mode reported; and the plain-PostgreSQL stand-ins for TimescaleDB's policies
(partitions, rollups, retention) doing what the TimescaleDB mode does."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from optilab.timescale.maintenance import run_maintenance
from optilab.timescale.migrate import load_migrations, migrate

AGGREGATE_COLUMNS = [
    "system_id",
    "bucket",
    "avg_cpu",
    "max_cpu",
    "avg_ram",
    "avg_disk",
    "avg_users",
    "occupied_ratio",
    "samples",
]
CONTRACT = {  # docs/interfaces.md
    "systems": [
        "id",
        "instance",
        "hostname",
        "ip_address",
        "department",
        "os_type",
        "os_version",
        "status",
        "health_state",
        "last_seen",
        "created_at",
    ],
    "usage_metrics": ["system_id", "timestamp", "cpu_usage", "ram_usage", "disk_usage", "logged_in_users"],
    "status_history": ["system_id", "timestamp", "status", "health_state", "reason"],
    "alerts": [
        "id",
        "system_id",
        "fingerprint",
        "starts_at",
        "ends_at",
        "status",
        "alertname",
        "alert_type",
        "severity",
        "department",
        "instance",
        "message",
        "labels",
        "annotations",
        "timestamp",
        "updated_at",
    ],
    "series": ["id", "metric", "labels"],
    "samples": ["series_id", "timestamp", "value"],
    "usage_hourly": AGGREGATE_COLUMNS,
    "usage_daily": AGGREGATE_COLUMNS,
}


def columns(conn: psycopg.Connection, table: str) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum",
            (table,),
        )
    ]


def test_schema_has_every_contract_column_and_reports_its_mode(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn) as conn:
        for table, expected in CONTRACT.items():
            found = columns(conn, table)
            assert [name for name in found if name in expected] == expected, table
        assert columns(conn, "usage_hourly") == columns(conn, "usage_daily") == AGGREGATE_COLUMNS
        mode = conn.execute("SELECT storage_mode()").fetchone()[0]
        has_timescaledb = conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()[0]
    assert mode == ("timescaledb" if has_timescaledb else "postgresql")


def test_both_modes_have_the_same_steps() -> None:
    timescale = [m.version for m in load_migrations("timescaledb")]
    plain = [m.version for m in load_migrations("postgresql")]
    assert timescale == plain == sorted(plain)
    assert {m.mode for m in load_migrations("postgresql")} == {None, "postgresql"}


def test_rerun_is_a_no_op(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn) as conn:
        before = conn.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall()
        conn.execute("INSERT INTO systems (instance) VALUES ('127.0.1.1:22')")
        conn.commit()
    assert migrate(migrated_dsn) == "postgresql"
    with psycopg.connect(migrated_dsn) as conn:
        assert conn.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall() == before
        assert conn.execute("SELECT instance FROM systems").fetchall() == [("127.0.1.1:22",)]
    assert len(before) == len(load_migrations("postgresql"))


def test_two_concurrent_runners_apply_each_step_once(empty_dsn: str) -> None:
    results: list[str] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait(timeout=10)
        try:
            results.append(migrate(empty_dsn))
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == [] and results == ["postgresql", "postgresql"]
    with psycopg.connect(empty_dsn) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == [m.version for m in load_migrations("postgresql")]


def test_cli_prints_and_logs_the_mode(empty_dsn: str) -> None:
    script = Path(sys.executable).with_name("optilab-migrate")
    done = subprocess.run([str(script), "--dsn", empty_dsn], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "postgresql")
    assert "storage mode: postgresql" in done.stderr
    failed = subprocess.run(
        [str(script), "--dsn", "host=127.0.0.1 port=1 dbname=x connect_timeout=2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1 and "migration failed" in failed.stderr


def test_requiring_timescaledb_fails_clearly_where_it_is_missing(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn) as conn:
        if conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()[0]:
            pytest.skip("TimescaleDB is installed here")
    with pytest.raises(RuntimeError, match="TimescaleDB"):
        migrate(empty_dsn, prefer="timescaledb")


def _usage(conn: psycopg.Connection, system_id: int, at: datetime, cpu: float, users: int) -> None:
    conn.execute(
        "INSERT INTO usage_metrics (system_id, timestamp, cpu_usage, ram_usage, disk_usage, "
        "logged_in_users) VALUES (%s, %s, %s, 50, 60, %s)",
        (system_id, at, cpu, users),
    )
    conn.execute("INSERT INTO usage_rollup_dirty (bucket) VALUES (date_trunc('hour', %s::timestamptz))", (at,))


def test_plain_mode_rollups_match_raw_rows_before_and_after_refresh(migrated_dsn: str) -> None:
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        run_maintenance(conn, now=now)
        system_id = conn.execute("INSERT INTO systems (instance) VALUES ('127.0.1.2:22') RETURNING id").fetchone()[0]
        for minute, (cpu, users) in enumerate([(10.0, 0), (30.0, 2), (50.0, 1), (90.0, 0)]):
            _usage(conn, system_id, now - timedelta(hours=1) + timedelta(minutes=minute * 20), cpu, users)
        live = conn.execute("SELECT * FROM usage_hourly ORDER BY bucket").fetchall()
        live_daily = conn.execute("SELECT * FROM usage_daily ORDER BY bucket").fetchall()
        result = run_maintenance(conn, now=now)
        assert result.hours_refreshed == 2
        assert conn.execute("SELECT count(*) FROM usage_rollup_dirty").fetchone() == (0,)
        assert conn.execute("SELECT * FROM usage_hourly ORDER BY bucket").fetchall() == live
        assert conn.execute("SELECT * FROM usage_daily ORDER BY bucket").fetchall() == live_daily
        # rows at HH-1:30 and HH-1:50 fall in the first hour, HH:10 and HH:30 in the second
        first = live[0]
        assert first[2:] == pytest.approx((20.0, 30.0, 50.0, 60.0, 1.0, 0.5, 2))
        assert live[1][2:] == pytest.approx((70.0, 90.0, 50.0, 60.0, 0.5, 0.5, 2))
        # a late row for an already rolled-up hour is seen at once and folded in by the next run
        _usage(conn, system_id, now - timedelta(minutes=45), 100.0, 3)
        hour = conn.execute("SELECT max_cpu, samples FROM usage_hourly WHERE bucket = %s", (first[1],)).fetchone()
        assert hour == (100.0, 3)
        run_maintenance(conn, now=now)
        assert conn.execute(
            "SELECT cpu_max, samples FROM usage_hourly_rollup WHERE bucket = %s", (first[1],)
        ).fetchone() == (100.0, 3)
        assert sum(row[-1] for row in conn.execute("SELECT * FROM usage_daily")) == 5


def test_plain_mode_retention_drops_old_partitions_and_keeps_rollups(migrated_dsn: str) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=40)
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("SELECT optilab_ensure_partitions(%s, %s)", (old.date(), old.date()))
        system_id = conn.execute("INSERT INTO systems (instance) VALUES ('127.0.1.3:22') RETURNING id").fetchone()[0]
        _usage(conn, system_id, old, 42.0, 1)
        conn.execute("INSERT INTO series (metric) VALUES ('node_load1')")
        conn.execute("INSERT INTO samples SELECT id, %s, 1.0 FROM series", (old,))
        children = (
            "SELECT count(*) FROM pg_inherits WHERE inhparent IN ('usage_metrics'::regclass, 'samples'::regclass)"
        )
        before = conn.execute(children).fetchone()[0]
        result = run_maintenance(conn, retention_days=30, now=now)
        assert result.partitions_dropped == 2  # usage_metrics and samples of that day
        after = conn.execute(children).fetchone()[0]
        assert result.partitions_created == after - before + result.partitions_dropped  # what it reports is real
        assert conn.execute("SELECT count(*) FROM usage_metrics").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM samples").fetchone() == (0,)
        # months of history live on in the aggregates
        assert conn.execute("SELECT avg_cpu, samples FROM usage_daily").fetchall() == [(42.0, 1)]
        partitions = {
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'usage_metrics'::regclass"
            )
        }
        assert f"usage_metrics_p{now:%Y%m%d}" in partitions
        assert f"usage_metrics_p{old:%Y%m%d}" not in partitions


# The unbounded real-time views of migration 0003, kept here as the reference that 0091's bounded
# views must match row for row (usage_hour_sums() is 0003's raw-row aggregation, still in the schema).
REFERENCE_VIEWS = """
CREATE TEMP VIEW ref_hourly_sums AS
    SELECT r.* FROM usage_hourly_rollup r
    WHERE NOT EXISTS (SELECT 1 FROM usage_rollup_dirty d WHERE d.bucket = r.bucket)
    UNION ALL
    SELECT s.* FROM (SELECT ARRAY(SELECT DISTINCT bucket FROM usage_rollup_dirty) AS hours) d,
                    LATERAL usage_hour_sums(d.hours) s;
CREATE TEMP VIEW ref_daily_sums AS
    WITH dirty_days AS (
        SELECT DISTINCT date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00+00') AS day
        FROM usage_rollup_dirty)
    SELECT r.* FROM usage_daily_rollup r WHERE r.bucket NOT IN (SELECT day FROM dirty_days)
    UNION ALL
    SELECT h.system_id, d.day, sum(h.cpu_sum), sum(h.cpu_n)::int8, max(h.cpu_max), sum(h.ram_sum),
           sum(h.ram_n)::int8, sum(h.disk_sum), sum(h.disk_n)::int8, sum(h.users_sum),
           sum(h.users_n)::int8, sum(h.occupied_n)::int8, sum(h.samples)::int8
    FROM dirty_days d JOIN ref_hourly_sums h ON h.bucket >= d.day AND h.bucket < d.day + INTERVAL '1 day'
    GROUP BY h.system_id, d.day;
"""
AVERAGES = """SELECT system_id, bucket, cpu_sum / NULLIF(cpu_n, 0), cpu_max, ram_sum / NULLIF(ram_n, 0),
    disk_sum / NULLIF(disk_n, 0), users_sum / NULLIF(users_n, 0), occupied_n::float8 / NULLIF(users_n, 0),
    samples FROM {} ORDER BY system_id, bucket"""


def _rounded(rows: list[tuple]) -> list[tuple]:
    """Float sums may differ in the last bit with the order rows are added in."""
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows]


def _assert_views_match_reference(conn: psycopg.Connection) -> tuple[int, int]:
    """Both views equal the unbounded definition; returns (hourly rows, daily rows) compared."""
    hourly = _rounded(conn.execute("SELECT * FROM usage_hourly ORDER BY system_id, bucket").fetchall())
    daily = _rounded(conn.execute("SELECT * FROM usage_daily ORDER BY system_id, bucket").fetchall())
    assert hourly == _rounded(conn.execute(AVERAGES.format("ref_hourly_sums")).fetchall())
    assert daily == _rounded(conn.execute(AVERAGES.format("ref_daily_sums")).fetchall())
    return len(hourly), len(daily)


def test_bounded_views_answer_like_the_unbounded_ones(migrated_dsn: str) -> None:
    """Pending hours only, everything rolled up, and a mix with gaps and late rows: same rows."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SELECT optilab_ensure_partitions(%s, %s)", (day.date(), (day + timedelta(days=3)).date()))
        conn.execute(REFERENCE_VIEWS)
        ids = [
            conn.execute("INSERT INTO systems (instance) VALUES (%s) RETURNING id", (f"127.0.1.{n}:22",)).fetchone()[0]
            for n in (10, 11, 12)
        ]
        # three machines, every 20 minutes over two days; values vary by machine and time
        for n, system_id in enumerate(ids):
            for step in range(0, 48 * 3, 1 + n):
                _usage(
                    conn,
                    system_id,
                    day + timedelta(minutes=20 * step),
                    float((step * 7 + n * 13) % 100),
                    (step + n) % 3,
                )
        pending = _assert_views_match_reference(conn)
        assert pending == (3 * 48, 3 * 2)  # nothing rolled up yet: all from raw rows

        assert run_maintenance(conn, now=day + timedelta(days=2)).hours_refreshed == 48
        assert _assert_views_match_reference(conn) == pending  # everything from the rollups

        # a mix: late rows in rolled-up hours of both days, with clean hours between the pending ones
        late = [day + timedelta(hours=1, minutes=5), day + timedelta(hours=30, minutes=7)]
        for at in late:
            _usage(conn, ids[0], at, 99.5, 4)
        conn.execute("INSERT INTO usage_rollup_dirty VALUES (%s)", (day + timedelta(hours=5),))  # mark, no new row
        assert conn.execute("SELECT count(DISTINCT bucket) FROM usage_rollup_dirty").fetchone() == (3,)
        assert _assert_views_match_reference(conn) == pending
        # the rows written after the rollup are visible at once, in the hour and in its day
        for at in late:
            hour = at.replace(minute=0)
            assert conn.execute(
                "SELECT max_cpu FROM usage_hourly WHERE system_id = %s AND bucket = %s", (ids[0], hour)
            ).fetchone() == (99.5,)
        assert conn.execute("SELECT sum(samples) FROM usage_daily WHERE system_id = %s", (ids[0],)).fetchone() == (
            48 * 3 + 2,
        )

        run_maintenance(conn, now=day + timedelta(days=2))
        assert conn.execute("SELECT count(*) FROM usage_rollup_dirty").fetchone() == (0,)
        assert _assert_views_match_reference(conn) == pending


def test_aggregate_views_keep_their_column_types(migrated_dsn: str) -> None:
    """CREATE OR REPLACE VIEW must not change the contract's types (the TimescaleDB oracle checks the other mode)."""
    expected = ["integer", "timestamp with time zone"] + ["double precision"] * 6 + ["bigint"]
    with psycopg.connect(migrated_dsn) as conn:
        for view in ("usage_hourly", "usage_daily"):
            types = [
                row[0]
                for row in conn.execute(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 ORDER BY attnum",
                    (view,),
                )
            ]
            assert types == expected, view
