"""``GET /health`` (JSON for humans, load balancers and the demo) and ``GET /metrics`` (self-metrics)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

health_bp = Blueprint("health", __name__)


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
