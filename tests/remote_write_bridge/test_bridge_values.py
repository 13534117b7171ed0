"""Values the API cannot serve (issue #11 item 5): the bridge drops ±Inf, NaN, 1e308-style and
negative or >100 % usage values (counted as ``bad_value``); values stored before that check are
repaired by migration 0095; the API never emits NaN/Infinity tokens and never 500s on them."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from optilab.api.app import close_app
from optilab.timescale.migrate import migrate
from tests.support.api_lab import AUTH, make_app
from tests.support.remote_write import (
    HOST,
    encode,
    metric_value,
    post,
)


def strict_json(text: str) -> object:
    """Parse like JSON.parse: NaN / Infinity / -Infinity are errors."""

    def refuse(token: str) -> None:
        raise ValueError(f"non-JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_impossible_values_are_dropped_and_counted(migrated_dsn, bridge_factory) -> None:
    bridge = bridge_factory(migrated_dsn)
    t = int(time.time() * 1000) - 60_000
    inf, nan = math.inf, math.nan
    body = encode(
        [
            (
                {"__name__": "system_cpu_usage", **HOST},
                [
                    (inf, t),
                    (-inf, t + 1),
                    (1e308, t + 2),
                    (-5.0, t + 3),
                    (100.5, t + 4),
                    (nan, t + 5),
                    (42.0, t + 6),
                    (100.0, t + 7),
                    (0.0, t + 8),
                ],
            ),
            ({"__name__": "system_ram_usage", **HOST}, [(inf, t + 6), (55.0, t + 7)]),
            ({"__name__": "system_disk_usage", **HOST}, [(-0.1, t + 6), (1e-300, t + 7)]),
            ({"__name__": "node_load1", **HOST}, [(inf, t), (-inf, t + 1), (1e308, t + 2), (-3.0, t + 3)]),
            ({"__name__": "system_status", **HOST}, [(inf, t), (1.0, t + 1)]),
        ]
    )
    assert post(bridge.write_url, body)[0] == 204
    with psycopg.connect(migrated_dsn) as conn:
        usage = conn.execute("SELECT cpu_usage, ram_usage, disk_usage FROM usage_metrics ORDER BY timestamp").fetchall()
        samples = conn.execute("SELECT value FROM samples ORDER BY timestamp").fetchall()
        status = conn.execute("SELECT status FROM systems").fetchall()
    assert usage == [(42.0, None, None), (100.0, 55.0, 1e-300), (0.0, None, None)]
    assert samples == [(1e308,), (-3.0,)]  # a load value is no percentage: only ±Inf is impossible
    assert status == [("online",)]
    metrics = bridge.metrics()
    assert metric_value(metrics, "optilab_bridge_samples_dropped_total", 'reason="bad_value"') == 5 + 1 + 1 + 2 + 1
    assert metric_value(metrics, "optilab_bridge_samples_dropped_total", 'reason="stale_or_nan"') == 1


@pytest.fixture
def api_on(migrated_dsn):  # type: ignore[no-untyped-def]
    app = make_app(migrated_dsn)
    yield app.test_client()
    close_app(app)


def _store_impossible_rows(dsn: str) -> int:
    """Rows as the bridge stored them before the check (written directly, as it did)."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT optilab_ensure_partitions(%s, %s)", (hour.date(), (hour + timedelta(days=1)).date()))
        system = conn.execute(
            "INSERT INTO systems (instance, hostname, department, status) VALUES "
            "('127.0.1.5:22', 'pc-05', 'physics', 'online') RETURNING id"
        ).fetchone()[0]
        rows = [(1e308, "Infinity", 50.0), (1e308, 40.0, "NaN"), (-5.0, "-Infinity", 30.0), (20.0, 30.0, 40.0)]
        for minute, (cpu, ram, disk) in enumerate(rows):
            conn.execute(
                "INSERT INTO usage_metrics (system_id, timestamp, cpu_usage, ram_usage, disk_usage, "
                "logged_in_users) VALUES (%s, %s, %s::float8, %s::float8, %s::float8, 1)",
                (system, hour + timedelta(minutes=minute), cpu, ram, disk),
            )
        conn.execute("INSERT INTO usage_rollup_dirty (bucket) VALUES (%s)", (hour,))
        conn.execute(
            "INSERT INTO usage_metrics (system_id, timestamp, cpu_usage, ram_usage, disk_usage) "
            "VALUES (%s, now() - INTERVAL '10 seconds', 'Infinity', 'NaN', 10)",
            (system,),
        )
    return system


def test_the_api_serves_stored_impossible_values_as_json_and_0095_repairs_them(migrated_dsn, api_on) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = '0095_impossible_usage_values'")
    system = _store_impossible_rows(migrated_dsn)
    # before the repair: non-finite values are answered as null, never as NaN/Infinity tokens
    for path in (f"/systems/{system}", "/systems"):
        response = api_on.get(path, headers=AUTH)
        assert response.status_code == 200, path
        strict_json(response.get_data(as_text=True))
    latest = api_on.get(f"/systems/{system}", headers=AUTH).get_json()["latest"]
    assert (latest["cpu_usage"], latest["ram_usage"], latest["disk_usage"]) == (None, None, 10.0)
    # two rows of 1e308 in one bucket overflow avg() and sum(): PostgreSQL raises, so reading them
    # cannot work until they are repaired — which is why 0095 exists
    for path in (f"/systems/{system}/metrics", "/departments"):
        assert api_on.get(path, headers=AUTH).status_code == 500, path
    migrate(migrated_dsn)  # applies 0095 again: the repair of data stored before the fix
    with psycopg.connect(migrated_dsn) as conn:
        left = conn.execute(
            "SELECT count(*) FROM usage_metrics WHERE cpu_usage NOT BETWEEN 0 AND 100 "
            "OR ram_usage NOT BETWEEN 0 AND 100 OR disk_usage NOT BETWEEN 0 AND 100"
        ).fetchone()
        assert left == (0,)
        assert conn.execute("SELECT optilab_refresh_rollups()").fetchone()[0] >= 1  # no overflow any more
    for path in (
        f"/systems/{system}/metrics",
        f"/systems/{system}/metrics?source=hourly",
        f"/systems/{system}",
        "/departments",
        "/departments/physics",
        "/departments?start=" + (datetime.now(UTC) - timedelta(days=5)).isoformat().replace("+", "%2B"),
    ):
        response = api_on.get(path, headers=AUTH)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
        strict_json(response.get_data(as_text=True))
    points = api_on.get(f"/systems/{system}/metrics?source=raw&step=1h", headers=AUTH).get_json()["points"]
    assert [p["cpu"] for p in points if p["cpu"] is not None] == [20.0]
