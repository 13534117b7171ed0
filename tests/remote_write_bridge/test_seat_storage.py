"""Seat state through the real bridge into the database: six 1/0 series per machine become one stored
sample per scrape whose code names the state (migration 0092's seat_states), readable per system
through the seat_history view. Plain-PostgreSQL mode here; TimescaleDB mode in test_timescale_oracle."""

from __future__ import annotations

import time

import psycopg

from optilab.exporter.parsers_seat import STATES
from optilab.remote_write_bridge.mapping import SEAT_CODES, LabelCache, classify
from tests.support.remote_write import HOST, STALE_NAN, encode, post


def seat_series(current_by_time: list[tuple[str, int]], host: dict[str, str] = HOST) -> list:
    """optilab_seat_state{state} as the exporter writes it: 1 for the current state, 0 for the others."""
    return [
        (
            {"__name__": "optilab_seat_state", **host, "state": state},
            [(1.0 if current == state else 0.0, ms) for current, ms in current_by_time],
        )
        for state in STATES
    ]


def same_hour_pair() -> tuple[int, int]:
    """Two recent sample times 10 s apart inside one UTC hour (the rollup tests count per hour)."""
    now = int(time.time() * 1000)
    hour = now - now % 3_600_000
    t2 = now - 1_000 if now - hour > 15_000 else hour - 1_000
    return t2 - 10_000, t2


def test_codes_are_the_exporters_states_in_order():
    assert list(SEAT_CODES) == list(STATES) and list(SEAT_CODES.values()) == list(range(len(STATES)))


def test_unknown_state_or_missing_instance_is_not_stored():
    labels = (("__name__", "optilab_seat_state"), ("instance", "127.0.1.5:22"), ("state", "asleep"))
    assert classify(labels, frozenset()) is None
    assert classify((("__name__", "optilab_seat_state"), ("state", "free")), frozenset()) is None
    info = LabelCache(frozenset()).info((("__name__", "optilab_seat_state"), ("instance", "a:22"), ("state", "idle")))
    assert info.seat_code == 2 and info.generic_key == ("optilab_seat_state", '{"instance":"a:22"}')


def test_bridge_stores_one_coded_sample_per_scrape(migrated_dsn, bridge_factory):
    bridge = bridge_factory(migrated_dsn)
    now = int(time.time() * 1000)
    t1, t2, t3 = now - 30_000, now - 15_000, now
    body = encode(
        [
            *seat_series([("in_use", t1), ("locked", t2)]),
            ({"__name__": "optilab_seat_state", **HOST, "state": "free"}, [(STALE_NAN, t3)]),
        ]
    )
    for _ in range(2):  # a retry stores nothing twice
        assert post(bridge.write_url, body)[0] == 204
    with psycopg.connect(migrated_dsn) as conn:
        history = conn.execute(
            "SELECT s.instance, s.hostname, s.department, extract(epoch FROM h.timestamp) * 1000, h.code, h.state,"
            " h.occupied FROM seat_history h JOIN systems s ON s.id = h.system_id ORDER BY h.timestamp"
        ).fetchall()
        assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 2
    assert history == [
        ("127.0.1.5:22", "pc-05", "physics", t1, 1, "in_use", True),
        ("127.0.1.5:22", "pc-05", "physics", t2, 3, "locked", True),
    ]


def test_every_state_round_trips(migrated_dsn, bridge_factory):
    bridge = bridge_factory(migrated_dsn)
    now = int(time.time() * 1000)
    scrapes = [(name, now - 60_000 + 5_000 * i) for i, name in enumerate(STATES)]
    assert post(bridge.write_url, encode(seat_series(scrapes)))[0] == 204
    with psycopg.connect(migrated_dsn) as conn:
        stored = [r[0] for r in conn.execute("SELECT state FROM seat_history ORDER BY timestamp")]
    assert stored == list(STATES)


def test_seat_hourly_is_live_while_dirty_and_rolled_up_with_usage(migrated_dsn, bridge_factory):
    """Plain mode: the hour is answered from raw samples until optilab_refresh_rollups(), whose
    usage_hourly_rollup insert fires the trigger that writes seat_hourly_rollup; never both."""
    bridge = bridge_factory(migrated_dsn, {"remote_write": {"maintenance_interval_s": 0}})
    t1, t2 = same_hour_pair()
    body = encode(
        [*seat_series([("idle", t1), ("idle", t2)]), ({"__name__": "system_cpu_usage", **HOST}, [(5.0, t1), (6.0, t2)])]
    )
    assert post(bridge.write_url, body)[0] == 204
    query = "SELECT code, sum(samples) FROM seat_hourly GROUP BY 1"
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        assert conn.execute(query).fetchall() == [(2, 2)]
        assert conn.execute("SELECT count(*) FROM seat_hourly_rollup").fetchone()[0] == 0
        conn.execute("SELECT optilab_refresh_rollups()")
        assert conn.execute("SELECT code, samples FROM seat_hourly_rollup").fetchall() == [(2, 2)]
        assert conn.execute(query).fetchall() == [(2, 2)]


def test_department_hours_are_live_while_dirty_and_rolled_up_with_usage(migrated_dsn, bridge_factory):
    """0094: occupied machines and machines per seat state per department and hour, the same before
    and after optilab_refresh_rollups() (live branch, then the rollup its trigger wrote)."""
    bridge = bridge_factory(migrated_dsn, {"remote_write": {"maintenance_interval_s": 0}})
    t1, t2 = same_hour_pair()
    other = {**HOST, "instance": "127.0.1.6:22", "hostname": "pc-06", "ip": "127.0.1.6"}
    body = encode(
        [
            *seat_series([("in_use", t1), ("idle", t2)]),
            *seat_series([("free", t1), ("free", t2)], other),
            ({"__name__": "optilab_logged_in_users", **HOST}, [(1, t1), (1, t2)]),
            ({"__name__": "optilab_logged_in_users", **other}, [(0, t1), (0, t2)]),
        ]
    )
    assert post(bridge.write_url, body)[0] == 204
    occupied = "SELECT department, occupied FROM department_hourly"
    states = "SELECT code, machines FROM department_seat_hourly ORDER BY code"
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        live = conn.execute(occupied).fetchall(), conn.execute(states).fetchall()
        conn.execute("SELECT optilab_refresh_rollups()")
        assert conn.execute("SELECT count(*) FROM department_hourly_rollup").fetchone()[0] == 1
        rolled = conn.execute(occupied).fetchall(), conn.execute(states).fetchall()
    assert live == rolled == ([("physics", 1.0)], [(0, 1.0), (1, 0.5), (2, 0.5)])
