"""``/board``: the live lab board — per department a grid of machines by seat state, free counts, a
heatmap and a utilisation chart — and the data it reads.

- ``GET /board`` serves the page (static HTML, CSS and JS shipped in the package; no CDN). The page
  holds no data, so it needs no key; everything it shows comes from the routes below.
- ``GET /board/data``: the snapshot (departments, machines, states, free counts). Host names and
  states only: no user name ever reaches the board (the API stores none).
- ``GET /board/events``: Server-Sent Events. A ``snapshot`` event at once and whenever a seat changes
  (the database is polled every ``POLL_S``), a comment line as heartbeat. Each stream ends after
  ``STREAM_S`` and the page reconnects: a waitress thread is held per open stream, so streams are
  bounded in time and in number (``MAX_STREAMS``; beyond that a 503 with Retry-After).
- ``GET /board/reports``: per department the 7-day heatmap and the last 24 h of utilisation.

Access: with ``public_board`` (``--public-board``) the data routes need no key; otherwise they take the
usual key in a header — the page asks for it once, keeps it in sessionStorage and sends it as
``X-API-Key`` (the event stream is read with ``fetch``, which can send headers; EventSource cannot),
so it never appears in a URL.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, send_from_directory, stream_with_context
from psycopg import sql
from werkzeug.exceptions import ServiceUnavailable

from optilab.api import params, reports, seats
from optilab.api.context import state

ASSETS = Path(__file__).parent / "static" / "board"
POLL_S = 2.0
HEARTBEAT_S = 15.0
STREAM_S = 60.0
MAX_STREAMS = 4

bp = Blueprint("board", __name__)
_streams = threading.BoundedSemaphore(MAX_STREAMS)

SNAPSHOT = sql.SQL("""
    SELECT s.id, s.hostname, s.department, {seat_column} AS state
    FROM systems s {seat}
    WHERE s.department IS NOT NULL
    ORDER BY s.department, s.hostname, s.id""")


def board_view(view: Any) -> Any:
    """Mark a data route of the board: public when the config says so (see api.auth)."""
    view.optilab_board = True
    return view


def snapshot() -> dict[str, Any]:
    app = state()
    now = app.clock()
    rows = app.db.fetch_all(
        SNAPSHOT.format(seat_column=seats.SEAT_COLUMN, seat=seats.SEAT_JOIN), seats.fresh_since(now)
    )
    departments: dict[str, dict[str, Any]] = {}
    for row in rows:
        dept = departments.setdefault(
            row["department"],
            {
                "name": row["department"],
                "machines": 0,
                "free": 0,
                "counts": dict.fromkeys([*seats.STATES, "unknown"], 0),
                "systems": [],
            },
        )
        seat = row["state"] or "unknown"
        dept["machines"] += 1
        dept["counts"][seat] += 1
        dept["free"] += seat == "free"
        dept["systems"].append({"id": row["id"], "hostname": row["hostname"], "state": seat})
    return {"generated_at": now, "public": app.config.public_board, "departments": list(departments.values())}


@bp.get("/board")
@params.accepts()
def page() -> Response:
    response = send_from_directory(ASSETS, "board.html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/board/assets/<path:name>")
@params.accepts()
def asset(name: str) -> Response:
    return send_from_directory(ASSETS, name, max_age=300)


page.optilab_public = True  # type: ignore[attr-defined]
asset.optilab_public = True  # type: ignore[attr-defined]


@bp.get("/board/data")
@params.accepts()
@board_view
def data() -> Any:
    return snapshot()


@bp.get("/board/reports")
@params.accepts()
@board_view
def board_reports() -> dict[str, Any]:
    """Per department: heatmap of the last 7 days, hourly utilisation of the last 24 hours."""
    app = state()
    now = app.clock()
    names = [r["department"] for r in app.db.fetch_all(reports.MACHINES.format(where=""), {})]
    out = []
    for name in sorted(names):
        _, machines = reports.find_department(name)
        out.append(
            {
                "name": name,
                "heatmap": reports.heatmap_body(name, now - timedelta(days=7), now),
                "history": reports.history_body(name, machines, now - timedelta(hours=24), now, timedelta(hours=1)),
            }
        )
    return {"generated_at": now, "departments": out}


def _event(name: str, body: dict[str, Any]) -> str:
    text = json.dumps(body, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else str(o))
    return f"event: {name}\ndata: {text}\n\n"


@bp.get("/board/events")
@params.accepts()
@board_view
def events() -> Response:
    if not _streams.acquire(blocking=False):
        raise ServiceUnavailable("too many open board streams; retry shortly", retry_after=5)

    def stream() -> Iterator[str]:
        try:
            yield "retry: 2000\n\n"
            last = None
            started = beat = time.monotonic()
            while time.monotonic() - started < STREAM_S:
                current = snapshot()
                key = json.dumps(current["departments"], sort_keys=True)
                if key != last:
                    last = key
                    yield _event("snapshot", current)
                elif time.monotonic() - beat >= HEARTBEAT_S:
                    beat = time.monotonic()
                    yield ": heartbeat\n\n"
                time.sleep(POLL_S)
        finally:
            _streams.release()

    response = Response(stream_with_context(stream()), content_type="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
