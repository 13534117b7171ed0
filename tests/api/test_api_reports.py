"""The lab reports against numbers computed here, in Python, from the raw rows (not the API's SQL).

The seeded lab (tests/support/api_lab.py: 20 generated machines with three days of 1-minute usage and seat
samples, plus hand-written departments) is read row by row; opening hours are evaluated minute by
minute with zoneinfo (not with api.hours); every report number is then recomputed from definitions
in docs/api.md and compared with what the API answers, JSON and CSV alike.
"""

from __future__ import annotations

import csv
import io
import zoneinfo
from collections import defaultdict
from datetime import date, datetime, timedelta

import psycopg
import pytest

from optilab.api.app import close_app
from optilab.exporter.config import OpeningHours
from optilab.exporter.parsers_seat import STATES
from tests.support import api_lab as lab_fixtures
from tests.support.api_lab import AUTH, Lab, make_app

api_lab = lab_fixtures.api_lab  # the shared session fixture: one seeded database for all API tests

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
# physics: weekdays 08:00-18:30 Berlin time, one closed day; every other department is open 24/7
PHYSICS_HOURS = OpeningHours("Europe/Berlin", (((480, 1110),),) * 5 + ((), ()), frozenset())


@pytest.fixture(scope="module")
def window(api_lab: Lab) -> tuple[datetime, datetime]:
    start = api_lab.h0 - timedelta(hours=20)  # the seeded rows begin 24 h before h0
    return start, api_lab.h0 + timedelta(hours=44)


@pytest.fixture(scope="module")
def closed_day(window) -> date:
    """The window's first Berlin weekday if it holds two or more (so open hours remain), else a day outside."""
    days = sorted({(window[0] + timedelta(hours=i)).astimezone(BERLIN).date() for i in range(64)})
    weekdays = [d for d in days if d.weekday() < 5]
    return weekdays[0] if len(weekdays) >= 2 else days[0] - timedelta(days=7)


@pytest.fixture(scope="module")
def client(api_lab: Lab, closed_day):  # type: ignore[no-untyped-def]
    hours = OpeningHours(PHYSICS_HOURS.timezone, PHYSICS_HOURS.weekly, frozenset({closed_day}))
    app = make_app(api_lab.dsn, opening_hours={"physics": hours})
    yield app.test_client()
    close_app(app)


def get(client, path: str, **query):  # type: ignore[no-untyped-def]
    response = client.get(path, query_string=query, headers=AUTH)
    return response.status_code, response.get_json()


def iso(moment: datetime) -> str:
    return moment.isoformat()


# --- the independent side ------------------------------------------------------------------------


def open_share(department: str, bucket: datetime, closed: date) -> float:
    """Minute by minute: is physics open at this instant in Berlin? Others are always open."""
    if department != "physics":
        return 1.0
    minutes = 0
    for minute in range(60):
        local = (bucket + timedelta(minutes=minute)).astimezone(BERLIN)
        clock = local.hour * 60 + local.minute
        minutes += local.weekday() < 5 and local.date() != closed and 480 <= clock < 1110
    return minutes / 60


OCCUPIED_CODES = {STATES.index(name) for name in ("in_use", "idle", "locked")}  # docs/api.md: somebody sits there


class Raw:
    """Raw rows of the window, reduced by hand: per-(machine, hour) occupancy from the seat samples (the
    share of samples whose state is in_use, idle or locked) and usage sample counts (for "up")."""

    def __init__(self, dsn: str, start: datetime, end: datetime) -> None:
        with psycopg.connect(dsn) as conn:
            self.departments = dict(
                conn.execute("SELECT id, department FROM systems WHERE department IS NOT NULL").fetchall()
            )
            rows = conn.execute(
                "SELECT system_id, timestamp, logged_in_users FROM usage_metrics "
                "WHERE timestamp >= %s AND timestamp < %s",
                (start, end),
            ).fetchall()
            self.seat_rows = conn.execute(
                "SELECT sy.id, sm.timestamp, sm.value FROM samples sm JOIN series se ON se.id = sm.series_id "
                "JOIN systems sy ON se.labels ->> 'instance' = sy.instance WHERE se.metric = 'optilab_seat_state' "
                "AND sm.timestamp >= %s AND sm.timestamp < %s",
                (start, end),
            ).fetchall()
        self.hours = [start + timedelta(hours=i) for i in range(int((end - start).total_seconds() // 3600))]
        counts: dict[tuple[int, datetime], int] = defaultdict(int)
        self.logged_in: dict[tuple[int, datetime], int] = defaultdict(int)
        for system_id, moment, users in rows:
            key = (system_id, moment.replace(minute=0, second=0, microsecond=0))
            counts[key] += 1
            self.logged_in[key] += (users or 0) > 0
        seats: dict[tuple[int, datetime], list[int]] = defaultdict(lambda: [0, 0])
        for system_id, moment, code in self.seat_rows:
            cell = seats[(system_id, moment.replace(minute=0, second=0, microsecond=0))]
            cell[0] += 1
            cell[1] += int(code) in OCCUPIED_CODES
        self.occ = {key: used / n for key, (n, used) in seats.items()}
        self.samples = dict(counts)
        self.machines: dict[str, int] = defaultdict(int)
        for department in self.departments.values():
            self.machines[department] += 1

    def dept_occupied(self, department: str, bucket: datetime) -> float:
        return sum(v for (sid, b), v in self.occ.items() if b == bucket and self.departments.get(sid) == department)


@pytest.fixture(scope="module")
def raw(api_lab: Lab, window) -> Raw:
    return Raw(api_lab.dsn, *window)


# --- reports ---------------------------------------------------------------------------------------


def test_utilisation_report_matches_the_raw_rows(client, window, raw: Raw, closed_day) -> None:
    status, body = get(client, "/reports/utilisation", start=iso(window[0]), end=iso(window[1]))
    assert status == 200
    by_name = {row["department"]: row for row in body["items"]}
    assert set(by_name) == set(raw.machines)
    for name, row in by_name.items():
        machines = raw.machines[name]
        weights = [(b, open_share(name, b, closed_day)) for b in raw.hours]
        open_hours = sum(w for _, w in weights)
        occupied = {b: raw.dept_occupied(name, b) for b, _ in weights}
        expected_util = sum(w * occupied[b] for b, w in weights) / (open_hours * machines)
        assert row["machines"] == machines
        assert row["open_hours"] == pytest.approx(open_hours, abs=1e-3)
        assert row["utilisation_ratio"] == pytest.approx(expected_util, abs=1e-5), name
        assert row["peak_occupancy"] == pytest.approx(max(occupied[b] for b, w in weights if w > 0), abs=1e-3)
        capacity = sum(w for b, w in weights if occupied[b] >= 0.9 * machines)
        assert row["hours_at_capacity"] == pytest.approx(capacity, abs=1e-3)
        assert row["underused"] == (expected_util < 0.2)
        assert (name in body["underused"]) == row["underused"]
    physics = by_name["physics"]
    # weekday hours only: the 64-hour window touches at most four days, one of them closed, and
    # physics is open 10.5 h of a day, so at most 31.5 h: under half of a 24/7 department's. (The
    # bound was "< 24", which a window from Monday 18:00 UTC to Thursday 10:00 meets exactly.)
    assert physics["timezone"] == "Europe/Berlin"
    assert 0 < physics["open_hours"] < len(raw.hours) / 2
    assert by_name["chemistry"]["open_hours"] == len(raw.hours)


def test_machines_report_matches_the_raw_rows(client, window, raw: Raw, closed_day, api_lab: Lab) -> None:
    status, body = get(client, "/reports/machines", start=iso(window[0]), end=iso(window[1]))
    assert status == 200
    most = defaultdict(int)
    for (_, bucket), n in raw.samples.items():
        most[bucket] = max(most[bucket], n)
    shares: dict[str, list[float]] = defaultdict(list)
    differs = 0
    for row in body["items"]:
        name, sid = row["department"], row["system_id"]
        weights = [(b, open_share(name, b, closed_day)) for b in raw.hours]
        open_hours = sum(w for _, w in weights)
        used = sum(w * raw.occ.get((sid, b), 0.0) for b, w in weights) / open_hours
        up = sum(w * raw.samples.get((sid, b), 0) / most[b] for b, w in weights if most[b]) / open_hours
        assert row["in_use_ratio"] == pytest.approx(used, abs=1e-5), row
        assert row["availability_ratio"] == pytest.approx(min(1.0, up), abs=1e-5), row
        shares[name].append(used)
        logins = (
            sum(
                w * raw.logged_in.get((sid, b), 0) / raw.samples[(sid, b)]
                for b, w in weights
                if (sid, b) in raw.samples
            )
            / open_hours
        )
        differs += abs(logins - used) > 1e-3
    assert differs > 0  # the seed has remote-only sessions: counting logins would give other numbers
    for row in body["items"]:
        average = sum(shares[row["department"]]) / len(shares[row["department"]])
        hot = average > 0 and row["in_use_ratio"] >= 1.5 * average and row["in_use_ratio"] - average >= 0.1
        assert row["hot_seat"] == hot
    assert {r["system_id"] for r in body["items"]} == set(raw.departments)
    seeded = [r["availability_ratio"] for r in body["items"] if r["system_id"] in api_lab.seeded_ids]
    assert min(seeded) > 0.99  # generated machines delivered a row every minute
    hand = {r["system_id"]: r["availability_ratio"] for r in body["items"]}
    assert hand[api_lab.odd] == 0.0  # no usage rows at all: never seen up


def test_heatmap_cells_are_hour_of_week_means_in_the_departments_zone(client, window, raw: Raw) -> None:
    status, body = get(client, "/departments/physics/heatmap", start=iso(window[0]), end=iso(window[1]))
    assert status == 200 and body["timezone"] == "Europe/Berlin" and len(body["cells"]) == 168
    sums: dict[tuple[int, int], list[float]] = defaultdict(list)
    recorded = {b for (sid, b) in raw.occ if raw.departments.get(sid) == "physics"}
    for bucket in raw.hours:
        if bucket not in recorded:
            continue
        local = bucket.astimezone(BERLIN)
        sums[(local.weekday(), local.hour)].append(raw.dept_occupied("physics", bucket) / raw.machines["physics"])
    for cell in body["cells"]:
        values = sums.get((cell["day"], cell["hour"]))
        if values is None:
            assert cell["utilisation_ratio"] is None
        else:
            assert cell["utilisation_ratio"] == pytest.approx(sum(values) / len(values), abs=1e-5), cell
    assert body["opening_hours"]["weekly"]["mon"] == ["08:00-18:30"] and body["opening_hours"]["weekly"]["sun"] == []


def test_history_states_and_utilisation_match_the_raw_rows(client, window, raw: Raw) -> None:
    start, end = window[0], window[0] + timedelta(hours=6)
    status, body = get(client, "/departments/chemistry/history", start=iso(start), end=iso(end), step="1h")
    assert status == 200 and body["step_seconds"] == 3600 and body["source"] == "hourly"
    assert [p["t"] for p in body["points"]] == [iso(start + timedelta(hours=i)) for i in range(6)]
    per: dict[tuple[datetime, int], list[int]] = defaultdict(list)
    for sid, moment, code in raw.seat_rows:
        if raw.departments.get(sid) == "chemistry" and start <= moment < end:
            per[(moment.replace(minute=0, second=0, microsecond=0), sid)].append(int(code))
    for point in body["points"]:
        bucket = datetime.fromisoformat(point["t"])
        expected = dict.fromkeys(STATES, 0.0)
        for (b, _sid), codes in per.items():
            if b == bucket:
                for code in codes:
                    expected[STATES[code]] += 1 / len(codes)
        assert point["states"] == pytest.approx(expected, abs=1e-3), point["t"]
        occupied = raw.dept_occupied("chemistry", bucket)
        assert point["occupied"] == pytest.approx(occupied, abs=1e-3)
        assert point["utilisation_ratio"] == pytest.approx(occupied / raw.machines["chemistry"], abs=1e-5)
    raw_step = get(client, "/departments/chemistry/history", start=iso(start), end=iso(end), step="30m")[1]
    assert raw_step["source"] == "raw" and len(raw_step["points"]) == 12


def test_systems_by_seat_state_and_free_counts(client, api_lab: Lab) -> None:
    with psycopg.connect(api_lab.dsn) as conn:
        latest = dict(
            conn.execute("""
            SELECT DISTINCT ON (sy.id) sy.id, sm.value FROM systems sy
            JOIN series se ON se.metric = 'optilab_seat_state' AND se.labels ->> 'instance' = sy.instance
            JOIN samples sm ON sm.series_id = se.id AND sm.timestamp > now() - interval '10 minutes'
            ORDER BY sy.id, sm.timestamp DESC""").fetchall()
        )
        departments = dict(conn.execute("SELECT id, department FROM systems").fetchall())
    for state in STATES:
        status, body = get(client, "/systems", state=state, limit=1000)
        assert status == 200
        expected = {sid for sid, code in latest.items() if STATES[int(code)] == state}
        if state == "offline":  # no fresh sample and offline: the hand-written offline machine
            expected.add(api_lab.exact_b)
        assert {s["id"] for s in body["items"]} == expected, state
        assert all(s["seat_state"] == state for s in body["items"])
    free = defaultdict(int)
    for sid, code in latest.items():
        free[departments[sid]] += STATES[int(code)] == "free"
    _, body = get(client, "/systems", limit=1)
    assert {k: v for k, v in body["free_by_department"].items() if v} == {k: v for k, v in free.items() if v}
    _, departments_body = get(client, "/departments")
    for row in departments_body["items"]:
        assert row["now"]["seats"]["free"] == free.get(row["name"], 0)


@pytest.mark.parametrize(
    "path",
    [
        "/reports/utilisation",
        "/reports/machines",
        "/departments/physics/heatmap",
        "/departments/physics/history",
        "/systems",
        "/departments",
    ],
)
def test_csv_has_the_json_rows(client, window, path) -> None:
    query = {} if path in ("/systems", "/departments") else {"start": iso(window[0]), "end": iso(window[1])}
    json_body = get(client, path, **query)[1]
    for how in (
        {"query_string": {**query, "format": "csv"}},
        {"query_string": query, "headers": {**AUTH, "Accept": "text/csv"}},
    ):
        response = client.get(path, **{"headers": AUTH, **how})
        assert response.status_code == 200 and response.mimetype == "text/csv"
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        key = next(k for k in ("items", "cells", "points") if k in json_body)
        assert len(rows) == len(json_body[key])
    assert "attachment" in response.headers["Content-Disposition"]


def test_unknown_department_is_404_and_bad_parameters_400(client) -> None:
    assert get(client, "/departments/nowhere/heatmap")[0] == 404
    assert get(client, "/departments/nowhere/history")[0] == 404
    status, body = get(client, "/reports/utilisation", format="xml")
    assert status == 400 and body["message"].startswith("format:")


def test_every_endpoint_refuses_unknown_parameters(client, api_lab: Lab) -> None:
    """``in_use=false`` used to be ignored and every machine came back."""
    status, body = get(client, "/systems", in_use="false")
    assert status == 400 and body["message"].startswith("in_use: unknown query parameter")
    paths = [
        rule.rule.replace("<int:system_id>", str(api_lab.exact_a)).replace("<name>", "physics")
        for rule in client.application.url_map.iter_rules()
        if rule.endpoint != "static"
    ]
    for path in paths:
        response = client.get(path, query_string={"bogus": "1"}, headers=AUTH)
        assert response.status_code == 400, path
        assert response.get_json()["message"].startswith("bogus:"), path
