"""A seeded lab database shared by the API tests (session scope: seeding once keeps them fast).

Generated machines and three days of 1-minute usage come from `api.seed`; on top, a department
``exactlab`` holds hand-written rows whose averages, peaks and occupancy are known exactly, so
tests compare the API's numbers with arithmetic rather than with the API's own SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from optilab.api.app import close_app, create_app
from optilab.api.config import ApiConfig
from optilab.api.seed import refresh_aggregates, seed_lab
from tests.fixtures.postgres import create_database, drop_database

KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"
AUTH = {"X-API-Key": KEY}


@dataclass(frozen=True)
class Lab:
    dsn: str
    storage_mode: str
    seeded_ids: list[int]
    h0: datetime  # start of the hand-written hour, two days ago
    exact_a: int  # online, in use now; cpu 0..59 in hour h0, users during its first half
    exact_b: int  # offline; cpu 100 in hour h0, never in use
    odd: int  # hostname with LIKE wildcards, department "misc"


def _exact_rows(conn: psycopg.Connection, now: datetime) -> tuple[datetime, int, int, int]:
    h0 = (now - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    ids = [
        conn.execute(
            "INSERT INTO systems (instance, hostname, ip_address, department, status, health_state, last_seen)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            row,
        ).fetchone()[0]
        for row in (
            ("127.0.9.1:22", "exact-a", "127.0.9.1", "exactlab", "online", "healthy", now),
            ("127.0.9.2:22", "exact-b", "127.0.9.2", "exactlab", "offline", "dead", h0),
            ("127.0.9.3:22", "odd_host%1", "127.0.9.3", "misc", "online", "healthy", now),
        )
    ]
    a, b, odd = ids
    rows = [(a, h0 + timedelta(minutes=i), float(i), 50.0, 10.0, 1 if i < 30 else 0) for i in range(60)]
    rows += [(b, h0 + timedelta(minutes=i), 100.0, 20.0, 30.0, 0) for i in range(60)]
    rows.append((a, now - timedelta(minutes=1), 80.0, 60.0, 10.0, 2))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO usage_metrics (system_id, timestamp, cpu_usage, ram_usage, disk_usage,"
            " logged_in_users) VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )
    refresh_aggregates(conn, h0, now + timedelta(hours=1))
    return h0, a, b, odd


@pytest.fixture(scope="session")
def api_lab(pg_server_dsn: str) -> Iterator[Lab]:
    from optilab.timescale.migrate import migrate

    dsn = create_database(pg_server_dsn)
    try:
        mode = migrate(dsn)
        now = datetime.now(UTC)
        seeded = seed_lab(dsn, systems=20, days=3, now=now)
        with psycopg.connect(dsn, autocommit=True) as conn:
            h0, a, b, odd = _exact_rows(conn, now)
            conn.execute("ANALYZE")
        yield Lab(dsn, mode, seeded.system_ids, h0, a, b, odd)
    finally:
        drop_database(dsn, pg_server_dsn)


def make_app(dsn: str, **overrides: object):  # type: ignore[no-untyped-def]
    """An app with two keys and no rate limit unless overridden; close with `close_app`."""
    config = ApiConfig(dsn=dsn, api_keys=(KEY, OTHER_KEY), rate_limit="", pool_timeout_s=2.0)
    return create_app(ApiConfig(**{**config.__dict__, **overrides}))


@pytest.fixture(scope="session")
def api_app(api_lab: Lab):  # type: ignore[no-untyped-def]
    app = make_app(api_lab.dsn)
    yield app
    close_app(app)


@pytest.fixture
def client(api_app):  # type: ignore[no-untyped-def]
    return api_app.test_client()
