"""Operational endpoints: ``/health`` and ``/metrics`` (no key, for probes and Prometheus) and
``/openapi.json`` (the contract, behind the key like the data it describes)."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from optilab.api import openapi
from optilab.api.auth import public
from optilab.api.context import state
from optilab.api.db import DatabaseUnavailableError
from optilab.toolkit.version import version

bp = Blueprint("ops", __name__)

# Newest sample over all systems: one backward primary-key probe per system, never a table scan.
HEALTH_QUERY = """
    SELECT storage_mode() AS storage_mode, now() AS db_now,
        (SELECT max(u.timestamp) FROM systems s CROSS JOIN LATERAL (
            SELECT m.timestamp FROM usage_metrics m WHERE m.system_id = s.id
            ORDER BY m.timestamp DESC LIMIT 1) u) AS newest_sample"""


@bp.get("/")
@public
def landing() -> dict[str, Any]:
    """What a browser or curl sees first: the endpoints and how to authenticate, not a bare 401."""
    return {
        "service": "OptiLab API",
        "version": version(),
        "authentication": "send X-API-Key: KEY or Authorization: Bearer KEY on every data endpoint",
        "endpoints": {
            "/systems": "lab machines, filterable",
            "/systems/{id}": "one machine",
            "/systems/{id}/metrics": "usage history of one machine",
            "/departments": "per-department summary",
            "/alerts": "alert history",
            "/openapi.json": "the full contract (needs a key)",
            "/health": "database status (no key)",
            "/metrics": "Prometheus metrics (no key)",
            "/-/healthy": "liveness (no key)",
            "/-/ready": "readiness (no key)",
        },
    }


@bp.get("/health")
@public
def health() -> Response | tuple[Response, int]:
    """200 when the database answers with OptiLab's schema, 503 (same shape) when it does not."""
    try:
        row = state().db.fetch_one(HEALTH_QUERY)
    except DatabaseUnavailableError as exc:
        return _unhealthy("unreachable", str(exc))
    except (psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedTable):
        return _unhealthy("schema missing", "run optilab-migrate on this database")
    assert row is not None
    newest = row["newest_sample"]
    age = None if newest is None else round((state().clock() - newest).total_seconds(), 3)
    return jsonify(
        {
            "status": "ok",
            "database": "ok",
            "storage_mode": row["storage_mode"],
            "newest_sample": newest,
            "newest_sample_age_seconds": age,
        }
    )


def _unhealthy(database: str, message: str) -> tuple[Response, int]:
    body: dict[str, Any] = {
        "status": "unavailable",
        "database": database,
        "storage_mode": None,
        "newest_sample": None,
        "newest_sample_age_seconds": None,
        "message": message,
    }
    return jsonify(body), 503


@bp.get("/metrics")
@public
def metrics() -> Response:
    return Response(generate_latest(state().registry), content_type=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
def openapi_document() -> dict[str, Any]:
    return openapi.document()
