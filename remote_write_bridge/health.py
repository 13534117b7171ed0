"""``GET /`` (a landing page), ``GET /health`` (JSON for humans, load balancers and the demo) and
``GET /metrics`` (self-metrics). ``/-/healthy`` and ``/-/ready`` come from toolkit.wsgi."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from optilab.remote_write_bridge import state
from optilab.remote_write_bridge.state import Bridge

health_bp = Blueprint("health", __name__)


LANDING = """<html><head><title>OptiLab bridge</title></head><body><h1>OptiLab bridge</h1>
<p>Stores Prometheus remote write and Alertmanager notifications in PostgreSQL.</p><ul>
<li>POST /api/v1/write: Prometheus remote write (remote_write.url in prometheus.yml)</li>
<li>POST /api/v1/alerts: Alertmanager webhook (webhook_configs.url)</li>
<li><a href="health">/health</a>: database reachability, storage mode, newest sample</li>
<li><a href="metrics">/metrics</a>: the bridge's own metrics</li>
<li><a href="-/healthy">/-/healthy</a>, <a href="-/ready">/-/ready</a></li>
</ul></body></html>
"""


@health_bp.get("/")
def landing() -> Response:
    return Response(LANDING, mimetype="text/html")


@health_bp.app_errorhandler(404)
def not_found(_error: Exception) -> Response:
    """Plain text instead of Flask's HTML page: the bridge's clients are Prometheus and Alertmanager."""
    return Response(
        "not found: the bridge serves /api/v1/write, /api/v1/alerts, /health, /metrics (see /)\n",
        status=404,
        mimetype="text/plain",
    )


@health_bp.get("/health")
def health() -> tuple[Response, int]:
    """200 with ``status: ok`` while the database answers and no write is stuck; else 503 with
    ``status: degraded`` and the ``reason``.

    A write in flight longer than ``stuck_write_s`` means the bridge cannot store what Prometheus
    sends (a lock, a hung connection) even though ``SELECT 1`` still works: say so.
    """
    bridge = state.current()
    reachable = bridge.store.ping()
    newest = bridge.newest_sample_ms
    in_flight, oldest = bridge.store.oldest_write_s()
    reason = None
    if not reachable:
        reason = "database unreachable"
    elif oldest > bridge.config.stuck_write_s:
        reason = f"a write has been in flight for {oldest:.0f} s (limit {bridge.config.stuck_write_s:g} s)"
    body = {
        "status": "ok" if reason is None else "degraded",
        "storage_mode": bridge.store.storage_mode() if reachable else bridge.store.known_mode,
        "database": {"reachable": reachable},
        "writes": {"in_flight": in_flight, "oldest_seconds": round(oldest, 3), "last_failure": _failure(bridge)},
        "newest_sample_age_seconds": None if newest is None else round(time.time() - newest / 1000, 3),
    }
    if reason is not None:
        body["reason"] = reason
    return jsonify(body), 200 if reason is None else 503


def _failure(bridge: Bridge) -> dict[str, object] | None:
    """The last transient write failure (e.g. a lock timeout): information, not a verdict — the
    write was answered 503 in time and Prometheus retries it."""
    failure = bridge.store.last_failure
    if failure is None:
        return None
    return {"reason": failure[1], "age_seconds": round(time.monotonic() - failure[0], 3)}


@health_bp.get("/metrics")
def metrics() -> Response:
    registry = state.current().metrics.registry
    return Response(
        generate_latest(registry),
        mimetype=CONTENT_TYPE_LATEST.split(";")[0],
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )
