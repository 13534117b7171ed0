"""A hand-written "seat lab" for the one meaning of occupied (docs/api.md): three machines of one
department over two hours — ``remote`` logged in over SSH only, ``locked`` with a locked local
session, ``sitting`` in use half of each hour — plus one current minute (remote free, locked locked,
sitting in use; all three logged in), and every report's expected answer for it, /departments'
included; used on plain PostgreSQL (tests/api/test_occupied_meaning.py) and on the TimescaleDB oracle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from optilab.api.app import close_app
from optilab.api.seed import refresh_aggregates
from tests.support.api_lab import AUTH, make_app

CODES = {"free": 0, "in_use": 1, "idle": 2, "locked": 3}


def add_machines(conn: psycopg.Connection, now: datetime) -> dict[str, tuple[int, int]]:
    """name -> (system id, seat series id)."""
    ids = {}
    for n, name in enumerate(("remote", "locked", "sitting")):
        instance = f"127.0.8.{n + 1}:22"
        system_id = conn.execute(
            "INSERT INTO systems (instance, hostname, ip_address, department, status, health_state, last_seen)"
            " VALUES (%s, %s, %s, 'seatlab', 'online', 'healthy', %s) RETURNING id",
            (instance, name, instance.split(":")[0], now),
        ).fetchone()[0]
        series_id = conn.execute(
            "INSERT INTO series (metric, labels) VALUES ('optilab_seat_state', %s) RETURNING id",
            (json.dumps({"instance": instance}),),
        ).fetchone()[0]
        ids[name] = (system_id, series_id)
    return ids


def write_minutes(conn: psycopg.Connection, ids: dict[str, tuple[int, int]], start: datetime, minutes: range) -> None:
    """Usage rows (every machine has somebody logged in) and seat samples for the given minutes."""
    for name, (system_id, series_id) in ids.items():
        usage, seats = [], []
        for minute in minutes:
            moment = start + timedelta(minutes=minute)
            state = {"remote": "free", "locked": "locked"}.get(name) or ("in_use" if minute % 60 < 30 else "free")
            usage.append((system_id, moment, 10.0, 20.0, 30.0, 1))
            seats.append((series_id, moment, CODES[state]))
        # one statement per table (unnest): the PGlite oracle refuses executemany's prepared statements
        conn.execute(
            "INSERT INTO usage_metrics (system_id, timestamp, cpu_usage, ram_usage, disk_usage,"
            " logged_in_users) SELECT * FROM unnest(%s::int[], %s::timestamptz[], %s::float8[],"
            " %s::float8[], %s::float8[], %s::int[])",
            [list(column) for column in zip(*usage, strict=True)],
        )
        conn.execute(
            "INSERT INTO samples (series_id, timestamp, value)"
            " SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[])",
            [list(column) for column in zip(*seats, strict=True)],
        )


def check_every_answer(dsn: str, ids: dict[str, tuple[int, int]], start: datetime, **overrides: object) -> None:
    """Every report's answer on the seat lab; ``overrides``: of the API's configuration."""
    window = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    app = make_app(dsn, **overrides)
    try:
        client = app.test_client()
        machines = client.get(
            "/reports/machines", query_string={**window, "department": "seatlab"}, headers=AUTH
        ).get_json()
        in_use = {row["hostname"]: row["in_use_ratio"] for row in machines["items"]}
        assert in_use == {"remote": 0.0, "locked": 1.0, "sitting": 0.5}
        util = client.get("/reports/utilisation", query_string=window, headers=AUTH).get_json()
        (row,) = [r for r in util["items"] if r["department"] == "seatlab"]
        assert row["occupied_machine_hours"] == pytest.approx(3.0)  # locked 2 h + sitting 2 × 0.5 h
        assert row["utilisation_ratio"] == pytest.approx(0.5) and row["peak_occupancy"] == pytest.approx(1.5)
        history = client.get(
            "/departments/seatlab/history", query_string={**window, "step": "1h"}, headers=AUTH
        ).get_json()
        assert [p["occupied"] for p in history["points"]] == [1.5, 1.5]
        assert history["points"][0]["states"] == {
            "free": 1.5,
            "in_use": 0.5,
            "idle": 0.0,
            "locked": 1.0,
            "offline": 0.0,
            "maintenance": 0.0,
        }
        fine = client.get(
            "/departments/seatlab/history", query_string={**window, "step": "30m"}, headers=AUTH
        ).get_json()
        assert fine["source"] == "raw" and [p["occupied"] for p in fine["points"]] == [2.0, 1.0, 2.0, 1.0]
        heatmap = client.get("/departments/seatlab/heatmap", query_string=window, headers=AUTH).get_json()
        cells = [c["utilisation_ratio"] for c in heatmap["cells"] if c["utilisation_ratio"] is not None]
        assert cells == [0.5, 0.5]
        # /departments: now (the current minute): all three logged in, but remote's seat is free and the
        # locked seat is occupied -> 2 in use, 1 free. Over the two hours: 1.5 machines occupied in each
        # hour (locked 1 + sitting 0.5, remote 0) of 3 with seat data -> ratio 0.5.
        one = client.get("/departments/seatlab", query_string=window, headers=AUTH).get_json()
        (listed,) = [
            d
            for d in client.get("/departments", query_string=window, headers=AUTH).get_json()["items"]
            if d["name"] == "seatlab"
        ]
        for department in (one, listed):
            assert (department["now"]["in_use"], department["now"]["free"]) == (2, 1)
            assert department["now"]["seats"] == {
                "free": 1,
                "in_use": 1,
                "idle": 0,
                "locked": 1,
                "offline": 0,
                "maintenance": 0,
            }
            ranged = department["range"]
            assert ranged["in_use_avg"] == pytest.approx(1.5) and ranged["in_use_peak"] == pytest.approx(1.5)
            assert ranged["occupancy_ratio"] == pytest.approx(0.5)
    finally:
        close_app(app)


def write_now(conn: psycopg.Connection, ids: dict[str, tuple[int, int]], now: datetime) -> None:
    """The current minute: everybody logged in (usage), remote's seat free, locked locked, sitting in use."""
    states = {"remote": "free", "locked": "locked", "sitting": "in_use"}
    for name, (system_id, series_id) in ids.items():
        conn.execute(
            "INSERT INTO usage_metrics (system_id, timestamp, cpu_usage, ram_usage, disk_usage,"
            " logged_in_users) VALUES (%s, %s, 10.0, 20.0, 30.0, 1)",
            (system_id, now),
        )
        conn.execute(
            "INSERT INTO samples (series_id, timestamp, value) VALUES (%s, %s, %s)",
            (series_id, now, CODES[states[name]]),
        )


def make_seat_lab(dsn: str) -> tuple[str, dict[str, tuple[int, int]], datetime]:
    """The three machines in a migrated database of either storage mode, starting a day ago, with
    their seats of the current minute."""
    now = datetime.now(UTC) - timedelta(seconds=30)
    start = (now - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT storage_mode()").fetchone() == ("postgresql",):
            last = (now + timedelta(days=1)).date()
            conn.execute("SELECT optilab_ensure_partitions(%s, %s)", (start.date(), last))
        ids = add_machines(conn, start)
        write_now(conn, ids, now)
    return dsn, ids, start


def rolled_up(seat_lab: tuple[str, dict[str, tuple[int, int]], datetime], **overrides: object) -> None:
    """Write the two hours and bring the aggregates up to date, then check every answer (``overrides``:
    overrides of the API's configuration)."""
    dsn, ids, start = seat_lab
    with psycopg.connect(dsn, autocommit=True) as conn:
        write_minutes(conn, ids, start, range(120))
        refresh_aggregates(conn, start, start + timedelta(hours=2))
    check_every_answer(dsn, ids, start, **overrides)
