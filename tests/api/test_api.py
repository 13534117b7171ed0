"""The API against the real PostgreSQL with the real schema and a seeded lab (tests/support/api_lab.py).

Numbers are checked two ways: against hand-written rows with known averages (``exactlab``) and,
for generated data, against independent SQL on the raw table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from optilab.api.app import close_app
from tests.support import api_lab as lab_fixtures
from tests.support.api_lab import AUTH, KEY, Lab, make_app

# Shared session fixtures (a seeded database and an app on it), made visible to this module.
api_lab, api_app, client = lab_fixtures.api_lab, lab_fixtures.api_app, lab_fixtures.client

pytestmark = pytest.mark.usefixtures("api_lab")


def get(client, path: str, **params):  # type: ignore[no-untyped-def]
    response = client.get(path, query_string=params, headers=AUTH)
    return response.status_code, response.get_json()


def sql_value(lab: Lab, query: str, args: tuple = ()) -> object:
    with psycopg.connect(lab.dsn) as conn:
        return conn.execute(query, args).fetchone()[0]


def iso(moment) -> str:  # type: ignore[no-untyped-def]
    return moment.isoformat()


# --- systems ------------------------------------------------------------------------------------


def test_systems_pages_cover_every_machine_once(client, api_lab: Lab) -> None:
    seen = []
    for offset in range(0, 40, 7):
        status, body = get(client, "/systems", limit=7, offset=offset)
        assert status == 200 and body["limit"] == 7 and body["offset"] == offset
        seen += [item["id"] for item in body["items"]]
    assert body["total"] == 23 == len(seen) == len(set(seen))
    assert seen == sorted(seen)


def test_systems_filters(client, api_lab: Lab) -> None:
    status, body = get(client, "/systems", status="offline", limit=1000)
    offline = sql_value(api_lab, "SELECT count(*) FROM systems WHERE status = 'offline'")
    assert status == 200 and body["total"] == offline >= 3
    assert {item["status"] for item in body["items"]} == {"offline"}

    _, body = get(client, "/systems", department="physics")
    assert body["total"] == 4 and {i["department"] for i in body["items"]} == {"physics"}
    _, body = get(client, "/systems", department="physics", health="degraded")
    assert all(i["health_state"] == "degraded" and i["department"] == "physics" for i in body["items"])
    _, body = get(client, "/systems", q="127.0.9.")
    assert {i["hostname"] for i in body["items"]} == {"exact-a", "exact-b", "odd_host%1"}


def test_text_search_takes_like_wildcards_literally(client, api_lab: Lab) -> None:
    for q in ("_", "%", "host%1"):
        _, body = get(client, "/systems", q=q)
        assert [i["id"] for i in body["items"]] == [api_lab.odd], q


def test_system_detail_has_latest_usage_and_history(client, api_lab: Lab) -> None:
    status, body = get(client, f"/systems/{api_lab.exact_a}")
    assert status == 200
    assert body["hostname"] == "exact-a" and body["health_state"] == "healthy"
    assert body["latest"]["cpu_usage"] == 80.0 and body["latest"]["logged_in_users"] == 2
    assert body["latest"]["in_use"] is True
    _, seeded = get(client, f"/systems/{api_lab.seeded_ids[0]}")
    history = [h["timestamp"] for h in seeded["status_history"]]
    assert len(history) == 3 and history == sorted(history, reverse=True)
    _, body = get(client, f"/systems/{api_lab.odd}")
    assert body["latest"] is None


# --- time series --------------------------------------------------------------------------------


def test_exact_hour_is_the_same_from_raw_hourly_and_daily(client, api_lab: Lab) -> None:
    window = {"start": iso(api_lab.h0), "end": iso(api_lab.h0 + timedelta(hours=1))}
    expected = {"cpu": 29.5, "cpu_max": 59.0, "ram": 50.0, "disk": 10.0, "users": 0.5, "occupied": 0.5, "samples": 60}
    path = f"/systems/{api_lab.exact_a}/metrics"
    for extra, source in (
        ({"step": "1h"}, "hourly"),
        ({"step": "1h", "source": "raw"}, "raw"),
        ({"step": "1d"}, "daily"),
    ):
        status, body = get(client, path, **window, **extra)
        assert status == 200 and body["source"] == source
        assert len(body["points"]) == 1
        point = body["points"][0]
        assert {k: point[k] for k in expected} == expected, source


@pytest.mark.parametrize(
    ("params", "source", "step"),
    [
        ({"start": "-1h"}, "raw", 15),
        ({}, "raw", 300),
        ({"start": "-30d"}, "hourly", 3 * 3600),
        ({"start": "-30d", "step": "1d"}, "daily", 86400),
        ({"start": "-400d"}, "daily", 2 * 86400),
        ({"start": "-3d", "step": "1s"}, "raw", 300),
    ],
)
def test_range_and_step_choose_the_source(client, api_lab: Lab, params: dict, source: str, step: int) -> None:
    system = api_lab.seeded_ids[1]
    status, body = get(client, f"/systems/{system}/metrics", **params)
    assert status == 200 and body["source"] == source and body["step_seconds"] == step
    assert 0 < len(body["points"]) <= 1000
    times = [p["t"] for p in body["points"]]
    assert times == sorted(times)


def test_aggregate_series_accounts_for_every_raw_row(client, api_lab: Lab) -> None:
    system = api_lab.seeded_ids[2]
    _, body = get(client, f"/systems/{system}/metrics", start="-30d")
    assert body["source"] == "hourly"
    raw = sql_value(api_lab, "SELECT count(*) FROM usage_metrics WHERE system_id = %s", (system,))
    assert sum(p["samples"] for p in body["points"]) == raw > 4000
    raw_max = sql_value(api_lab, "SELECT max(cpu_usage) FROM usage_metrics WHERE system_id = %s", (system,))
    assert max(p["cpu_max"] for p in body["points"]) == pytest.approx(raw_max, abs=1e-3)


def test_series_of_unknown_system_is_404(client) -> None:
    status, body = get(client, "/systems/999999/metrics")
    assert status == 404 and body["message"] == "system 999999 not found"


# --- departments --------------------------------------------------------------------------------


def test_department_now_and_exact_range(client, api_lab: Lab) -> None:
    status, body = get(client, "/departments/exactlab", start=iso(api_lab.h0), end=iso(api_lab.h0 + timedelta(hours=1)))
    assert status == 200 and body["source"] == "raw"
    assert (body["machines"], body["up"], body["down"]) == (2, 1, 1)
    # No seat series here. exact-a is online with two logins a minute ago, but without seat data it is
    # neither in use nor free (unknown); exact-b is offline, an offline seat. The gauges are exact-a's
    # newest row (cpu 80, ram 60, disk 10).
    assert body["now"] == {
        "in_use": 0,
        "free": 0,
        "avg_cpu": 80.0,
        "peak_cpu": 80.0,
        "avg_ram": 60.0,
        "avg_disk": 10.0,
        "seats": {"free": 0, "in_use": 0, "idle": 0, "locked": 0, "offline": 1, "maintenance": 0},
    }
    # hour h0: exact-a cpu 0..59 (mean 29.5), ram 50, disk 10; exact-b cpu 100, ram 20, disk 30; 60 rows
    # each -> cpu (29.5 + 100) / 2, peak 100, ram 35, disk 20. exact-a's logins in the first half count
    # for nothing: occupancy comes from seat data, and there is none, so it is unknown (null), not 0.
    assert body["range"] == {
        "avg_cpu": 64.75,
        "peak_cpu": 100.0,
        "avg_ram": 35.0,
        "avg_disk": 20.0,
        "occupancy_ratio": None,
        "in_use_avg": None,
        "in_use_peak": None,
        "samples": 120,
    }
    assert sorted(s["hostname"] for s in body["systems"]) == ["exact-a", "exact-b"]


def test_department_range_from_aggregates_matches_raw(client, api_lab: Lab) -> None:
    window = {"start": iso(api_lab.h0 - timedelta(hours=12)), "end": iso(api_lab.h0 + timedelta(hours=12))}
    _, body = get(client, "/departments/exactlab", **window)
    assert body["source"] == "hourly"
    assert body["range"]["avg_cpu"] == pytest.approx(64.75) and body["range"]["samples"] == 120
    assert body["range"]["in_use_avg"] is None and body["range"]["occupancy_ratio"] is None


# Seed codes (api/seed.py): 0 free, 1 in use, 2 idle, 3 locked, 4 offline; occupied = 1, 2, 3.
SEAT_NOW = """
    SELECT s.department, count(*) FILTER (WHERE x.value IN (1, 2, 3)) AS occupied,
        count(*) FILTER (WHERE x.value = 0) AS free
    FROM systems s JOIN series se ON se.metric = 'optilab_seat_state' AND se.labels ->> 'instance' = s.instance
    JOIN LATERAL (SELECT value FROM samples WHERE series_id = se.id AND timestamp > now() - interval '10 minutes'
                  ORDER BY timestamp DESC LIMIT 1) x ON true
    WHERE s.department = %s GROUP BY 1"""
# Occupied machines per hour straight from the raw seat samples: each machine's share of its samples of
# the hour in codes 1-3, summed per hour; then their mean and maximum over the hours overlapping the range.
SEAT_RANGE = """
    WITH per AS (
        SELECT se.id, date_bin('1 hour', sm.timestamp, TIMESTAMPTZ '2000-01-01') AS b,
            avg((sm.value IN (1, 2, 3))::int) AS occ
        FROM systems s JOIN series se ON se.metric = 'optilab_seat_state' AND se.labels ->> 'instance' = s.instance
        JOIN samples sm ON sm.series_id = se.id
        WHERE s.department = %(department)s
          AND sm.timestamp >= date_bin('1 hour', %(start)s::timestamptz, TIMESTAMPTZ '2000-01-01')
        GROUP BY 1, 2),
    hours AS (SELECT b, sum(occ) AS occ FROM per WHERE b < %(end)s GROUP BY b)
    SELECT avg(occ)::float8, max(occ)::float8, (SELECT count(DISTINCT id) FROM per) FROM hours"""


def test_departments_list_counts_every_machine(client, api_lab: Lab) -> None:
    status, body = get(client, "/departments")
    assert status == 200 and body["source"] == "hourly"
    names = [d["name"] for d in body["items"]]
    assert names == ["biology", "chemistry", "exactlab", "informatics", "mathematics", "misc", "physics"]
    assert sum(d["machines"] for d in body["items"]) == 23
    for department in body["items"]:
        assert department["up"] + department["down"] == department["machines"]
        now, seat_counts = department["now"], department["now"]["seats"]
        # one meaning: in use = the occupied seat states, free = free seats (machines without seat
        # data in neither), the same counts as now.seats and the board
        assert now["in_use"] == seat_counts["in_use"] + seat_counts["idle"] + seat_counts["locked"]
        assert now["free"] == seat_counts["free"]
        assert now["in_use"] + now["free"] <= department["machines"]
    physics = next(d for d in body["items"] if d["name"] == "physics")
    raw_avg = sql_value(
        api_lab,
        """SELECT avg(cpu_usage) FROM usage_metrics m
        JOIN systems s ON s.id = m.system_id WHERE s.department = 'physics'
        AND m.timestamp >= date_bin('1 hour', now() - interval '24 hours', TIMESTAMPTZ '2000-01-01')""",
    )
    assert physics["range"]["avg_cpu"] == pytest.approx(raw_avg, rel=0.01)


def test_departments_occupancy_from_raw_seat_samples(client, api_lab: Lab) -> None:
    end = datetime.now(UTC)
    start = end - timedelta(hours=24)
    status, body = get(client, "/departments", start=iso(start), end=iso(end))
    assert status == 200
    by_name = {d["name"]: d for d in body["items"]}
    for name in ("physics", "biology"):
        with psycopg.connect(api_lab.dsn) as conn:
            row = conn.execute(SEAT_NOW, (name,)).fetchone()
            occupied, free = (row[1], row[2]) if row else (0, 0)
            avg, peak, seated = conn.execute(SEAT_RANGE, {"department": name, "start": start, "end": end}).fetchone()
        assert (by_name[name]["now"]["in_use"], by_name[name]["now"]["free"]) == (occupied, free)
        ranged = by_name[name]["range"]
        assert seated == by_name[name]["machines"] and avg is not None
        assert ranged["in_use_avg"] == pytest.approx(avg) and ranged["in_use_peak"] == pytest.approx(peak)
        assert ranged["occupancy_ratio"] == pytest.approx(avg / seated)
        # the seed counts one login-minute in twenty as a remote session only: fewer occupied than logged in
        logged_in = sql_value(
            api_lab,
            """SELECT avg((logged_in_users > 0)::int)::float8 FROM usage_metrics m
            JOIN systems s ON s.id = m.system_id WHERE s.department = %s AND m.timestamp >= %s AND m.timestamp < %s""",
            (name, start, end),
        )
        assert ranged["occupancy_ratio"] < logged_in


def test_unknown_department_is_404(client) -> None:
    status, body = get(client, "/departments/nowhere")
    assert status == 404 and "nowhere" in body["message"]


# --- alerts -------------------------------------------------------------------------------------


def test_alert_filters(client, api_lab: Lab) -> None:
    count = lambda where: sql_value(api_lab, f"SELECT count(*) FROM alerts WHERE {where}")  # noqa: E731, S608
    _, body = get(client, "/alerts", state="active")
    assert body["total"] == count("status = 'firing'") > 0
    assert {a["status"] for a in body["items"]} == {"firing"}
    _, body = get(client, "/alerts", state="resolved", severity="warning")
    assert body["total"] == count("status = 'resolved' AND severity = 'warning'") > 0
    _, body = get(client, "/alerts", department="physics")
    assert body["total"] == count("department = 'physics'")
    _, body = get(client, "/alerts", start="-12h", end="-11h")
    assert (
        body["total"]
        == count(
            "starts_at < now() - interval '11 hours' AND (status = 'firing' OR ends_at >= now() - interval '12 hours')"
        )
        > 0
    )
    _, body = get(client, "/alerts", limit=2)
    assert len(body["items"]) == 2 and body["total"] == count("true")
    starts = [a["starts_at"] for a in body["items"]]
    assert starts == sorted(starts, reverse=True)


# --- ops ----------------------------------------------------------------------------------------


def test_health_needs_no_key_and_reports_mode_and_freshness(api_app, api_lab: Lab) -> None:
    response = api_app.test_client().get("/health")
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "ok" and body["storage_mode"] == api_lab.storage_mode
    assert 0 <= body["newest_sample_age_seconds"] < 600


def test_metrics_label_route_templates_not_paths(api_app, api_lab: Lab) -> None:
    test_client = api_app.test_client()
    for system in api_lab.seeded_ids[:3]:
        test_client.get(f"/systems/{system}", headers=AUTH)
    test_client.get("/no/such/path", headers=AUTH)
    text = test_client.get("/metrics").get_data(as_text=True)
    assert 'endpoint="/systems/<int:system_id>",method="GET"' in text
    assert 'code="404",endpoint="unmatched"' in text
    assert f'endpoint="/systems/{api_lab.seeded_ids[0]}"' not in text
    assert "optilab_api_db_pool_connections" in text


def test_openapi_document_is_served(client) -> None:
    status, body = get(client, "/openapi.json")
    assert status == 200 and set(body["paths"]) >= {
        "/systems",
        "/systems/{system_id}/metrics",
        "/departments/{name}",
        "/alerts",
        "/health",
        "/metrics",
    }


def test_schema_missing_is_503_not_500(empty_dsn: str) -> None:
    app = make_app(empty_dsn)
    try:
        test_client = app.test_client()
        response = test_client.get("/systems", headers=AUTH)
        assert response.status_code == 503 and "optilab-migrate" in response.get_json()["message"]
        response = test_client.get("/health")
        assert response.status_code == 503 and response.get_json()["database"] == "schema missing"
    finally:
        close_app(app)


def test_key_never_logged(api_app, caplog) -> None:
    caplog.set_level("DEBUG")
    test_client = api_app.test_client()
    test_client.get("/systems", headers=AUTH)
    test_client.get("/systems", headers={"X-API-Key": "wrong-key-but-long-enough"})
    assert KEY not in caplog.text and "wrong-key-but-long-enough" not in caplog.text


def test_hourly_series_includes_hours_not_yet_refreshed(migrated_dsn: str) -> None:
    """Plain mode marks written hours dirty; until the rollup refresh runs, usage_hourly answers
    them from raw rows (TimescaleDB: real-time aggregates). The API must see those rows."""
    from datetime import UTC, datetime

    from optilab.api.seed import add_systems, add_usage, storage_mode

    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        (system,) = add_systems(conn, 1)
        add_usage(conn, [system], hour, hour + timedelta(hours=2))
        if storage_mode(conn) == "postgresql":  # what the bridge does on every write
            conn.execute("INSERT INTO usage_rollup_dirty VALUES (%s), (%s)", (hour, hour + timedelta(hours=1)))
        expected = conn.execute("SELECT avg(cpu_usage) FROM usage_metrics").fetchone()[0]
    app = make_app(migrated_dsn)
    try:
        status, body = get(
            app.test_client(),
            f"/systems/{system}/metrics",
            start=iso(hour),
            end=iso(hour + timedelta(hours=2)),
            step="1h",
        )
    finally:
        close_app(app)
    assert status == 200 and body["source"] == "hourly"
    assert [p["samples"] for p in body["points"]] == [60, 60]
    assert sum(p["cpu"] for p in body["points"]) / 2 == pytest.approx(expected, abs=1e-3)
