"""Current seat state of each machine, read from the seat history (migration 0092).

A machine's state is its newest ``optilab_seat_state`` sample if that is younger than the freshness
window (``fresh_window_s``, as for "now" elsewhere); without one, an offline machine is ``offline``
and any other is ``null`` (unknown: the exporter has not reported seats for it). One backward probe
of ``samples``' primary key per machine, found through the partial index on the series' instance.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import sql

from optilab.api.context import state
from optilab.exporter.parsers_seat import OCCUPIED, STATES

__all__ = ["OCCUPIED", "SEAT_COLUMN", "SEAT_JOIN", "STATES", "fresh_since"]

# The machines' seat series are found in one hash join (not one series lookup per machine: that cost
# 20 ms for 250 machines), then one backward probe of samples' primary key each.
SEAT_JOIN = sql.SQL("""LEFT JOIN seat_series seat_s ON seat_s.system_id = s.id
    LEFT JOIN LATERAL (
        SELECT st.state FROM samples sm
        JOIN seat_states st ON st.code = sm.value::smallint
        WHERE sm.series_id = seat_s.series_id
          AND sm.timestamp > %(seat_fresh)s AND sm.timestamp <= %(seat_now)s
        ORDER BY sm.timestamp DESC LIMIT 1) seat ON true""")
SEAT_COLUMN = sql.SQL("COALESCE(seat.state, CASE WHEN s.status IS DISTINCT FROM 'online' THEN 'offline' END)")


def fresh_since(now: datetime | None = None) -> dict[str, datetime]:
    """The parameters SEAT_JOIN needs."""
    app = state()
    now = now or app.clock()
    return {"seat_now": now, "seat_fresh": now - timedelta(seconds=app.config.fresh_window_s)}
