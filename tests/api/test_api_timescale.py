"""The API on a real TimescaleDB (the PGlite oracle of tests/timescale/test_timescale_oracle.py; skipped
with its reason where node/npm cannot run it): same endpoints, same answers, mode reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from optilab.api.app import close_app
from optilab.api.seed import add_systems, add_usage, refresh_aggregates
from tests.support.api_lab import AUTH, make_app
from tests.support.seat_lab import make_seat_lab, rolled_up

pytestmark = pytest.mark.slow


def test_api_reads_continuous_aggregates(timescaledb_dsn: str) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    with psycopg.connect(timescaledb_dsn, autocommit=True) as conn:
        systems = add_systems(conn, 2, departments=("tsdb",))
        add_usage(conn, systems, hour, hour + timedelta(hours=3))
        refresh_aggregates(conn, hour, hour + timedelta(hours=2))  # the third hour stays real-time
        raw = conn.execute(
            "SELECT count(*), avg(cpu_usage) FROM usage_metrics WHERE system_id = %s", (systems[0],)
        ).fetchone()
    app = make_app(timescaledb_dsn, pool_max_size=1)
    try:
        client = app.test_client()
        health = client.get("/health").get_json()
        assert health["storage_mode"] == "timescaledb" and health["status"] == "ok"
        window = {"start": hour.isoformat(), "end": (hour + timedelta(hours=3)).isoformat()}
        series = client.get(
            f"/systems/{systems[0]}/metrics", query_string={**window, "step": "1h"}, headers=AUTH
        ).get_json()
        assert series["source"] == "hourly"
        assert [p["samples"] for p in series["points"]] == [60, 60, 60] and raw[0] == 180
        assert sum(p["cpu"] for p in series["points"]) / 3 == pytest.approx(raw[1], abs=1e-3)
        day = {"start": hour.isoformat(), "end": (hour + timedelta(hours=6)).isoformat()}
        department = client.get("/departments/tsdb", query_string=day, headers=AUTH).get_json()
        assert department["machines"] == 2 and department["source"] == "hourly"
        assert department["range"]["samples"] == 360
    finally:
        close_app(app)


def test_reports_count_seats_occupied_as_in_plain_mode(timescaledb_dsn: str) -> None:
    """The reports' views of migration 0096 (TimescaleDB variant): the same hand-written lab, the same
    answers — a remote-only session is not occupied, a locked seat is."""
    # one pooled connection, as above: pglite-socket can deadlock its query queue when two connections
    # overlap (electric-sql/pglite#1046); a pool of 8 opening connections beside a query hung here once
    rolled_up(make_seat_lab(timescaledb_dsn), pool_max_size=1)
