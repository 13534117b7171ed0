"""One meaning of "occupied" (docs/api.md): somebody sits at the seat — its seat state is in_use, idle
or locked. Three hand-written machines in one department over two hours: ``remote`` has a login all
the time but only over SSH (seat free), ``locked`` has a locked local session, ``sitting`` is in use
for the first half of each hour. Every report, the history and the heatmap must agree, both when the
hours are rolled up and when the newest rows are still marked dirty (answered live)."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from optilab.api.seed import refresh_aggregates
from tests.support.seat_lab import check_every_answer, make_seat_lab, rolled_up, write_minutes


@pytest.fixture
def seat_lab(migrated_dsn: str) -> tuple[str, dict[str, tuple[int, int]], datetime]:
    return make_seat_lab(migrated_dsn)


def test_a_remote_session_is_not_occupied_and_a_locked_seat_is(seat_lab) -> None:
    rolled_up(seat_lab)
    with psycopg.connect(seat_lab[0]) as conn:
        assert conn.execute("SELECT count(*) FROM usage_rollup_dirty").fetchone() == (0,)


def test_hours_not_rolled_up_yet_are_answered_live(seat_lab) -> None:
    """Roll up the first 45 minutes, then write the rest and only mark the hours dirty, as the bridge
    does between maintenance passes: the stale rolled-up part must be replaced, not added."""
    dsn, ids, start = seat_lab
    with psycopg.connect(dsn, autocommit=True) as conn:
        write_minutes(conn, ids, start, range(45))
        refresh_aggregates(conn, start, start + timedelta(hours=1))
        write_minutes(conn, ids, start, range(45, 120))
        conn.execute("INSERT INTO usage_rollup_dirty (bucket) VALUES (%s), (%s)", (start, start + timedelta(hours=1)))
    check_every_answer(dsn, ids, start)
