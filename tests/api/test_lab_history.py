"""A simulated lab day written through the real bridge (labsim.history), then read back by the reports:
the rooms behave as labsim's model says — physics over-subscribed, biology underused — and every seat
state the model produces reaches the seat history."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from optilab.api.app import close_app
from optilab.exporter.config import load_department_settings
from optilab.labsim.history import replay
from optilab.labsim.model import OPENING_HOURS
from tests.support.api_lab import AUTH, make_app


def last_weekday_midnight(now: datetime) -> datetime:
    """Midnight UTC of the latest Tuesday–Thursday that ended at least a day ago (a full working day)."""
    day = (now - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    while day.weekday() not in (1, 2, 3):
        day -= timedelta(days=1)
    return day


def test_a_day_through_the_bridge_shows_the_rooms_the_model_describes(migrated_dsn, bridge_factory, tmp_path):
    bridge = bridge_factory(migrated_dsn)
    day = last_weekday_midnight(datetime.now(UTC))
    result = replay(
        bridge.url, day.timestamp(), (day + timedelta(days=1)).timestamp(), hosts=30, departments=3, step=600
    )
    assert result.requests > 0 and result.samples > 30 * 144 * 6
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("SELECT optilab_refresh_rollups()")
        states = {row[0] for row in conn.execute("SELECT DISTINCT state FROM seat_history")}
        per_system = conn.execute("SELECT count(*) FROM seat_history GROUP BY system_id").fetchall()
    assert {"free", "in_use", "idle", "locked"} <= states
    assert len(per_system) == 30 and {n for (n,) in per_system} == {144}

    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "departments:\n"
        + "".join(
            f"  {name}:\n    hosts: []\n    opening_hours: {{timezone: UTC, mon-fri: '{OPENING_HOURS['mon-fri']}', "
            f"sat: '{OPENING_HOURS['sat']}'}}\n"
            for name in ("physics", "chemistry", "biology")
        )
    )
    hours = {name: s.opening_hours for name, s in load_department_settings(inventory).items()}
    app = make_app(migrated_dsn, opening_hours=hours)
    try:
        response = app.test_client().get(
            "/reports/utilisation",
            headers=AUTH,
            query_string={"start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()},
        )
    finally:
        close_app(app)
    assert response.status_code == 200
    body = response.get_json()
    rows = {row["department"]: row for row in body["items"]}
    assert rows["physics"]["open_hours"] == 12.0  # 08:00-20:00 on a weekday
    assert "physics" in body["over_subscribed"] and "biology" not in body["over_subscribed"]
    assert "biology" in body["underused"] and "physics" not in body["underused"]
    assert rows["physics"]["at_capacity_ratio"] > rows["chemistry"]["at_capacity_ratio"]
    assert (
        rows["physics"]["utilisation_ratio"]
        > rows["chemistry"]["utilisation_ratio"]
        > rows["biology"]["utilisation_ratio"]
    )
    assert rows["physics"]["peak_occupancy"] >= 9


def test_only_loopback_bridges():
    with pytest.raises(ValueError, match="loopback"):
        replay("http://bridge.example:9843", time.time() - 60, time.time())
