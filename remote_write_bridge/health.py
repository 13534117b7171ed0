"""``GET /`` (a landing page), ``GET /health`` (JSON for humans, load balancers and the demo) and
``GET /metrics`` (self-metrics). ``/-/healthy`` and ``/-/ready`` come from toolkit.wsgi."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
    return Response("not found: the bridge serves /api/v1/write, /api/v1/alerts, /health, /metrics "
                    "(see /)\n", status=404, mimetype="text/plain")


@health_bp.get("/health")
def health() -> tuple[Response, int]:
    """200 with ``status: ok`` while the database answers, else 503 with ``status: degraded``."""
    bridge = current_app.extensions["optilab_bridge"]
    reachable = bridge.store.ping()
    newest = bridge.newest_sample_ms
    body = {
        "status": "ok" if reachable else "degraded",
        "storage_mode": bridge.store.storage_mode() if reachable else bridge.store.known_mode,
        "database": {"reachable": reachable},
        "newest_sample_age_seconds": None if newest is None else round(time.time() - newest / 1000, 3),
    }
    return jsonify(body), 200 if reachable else 503


@health_bp.get("/metrics")
def metrics() -> Response:
    registry = current_app.extensions["optilab_bridge"].metrics.registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})
