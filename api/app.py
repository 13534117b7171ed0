"""Flask app factory: wires config, the database pool, auth, rate limits, CORS, metrics and blueprints.

Hook order matters and is fixed here: the latency timer starts first (so rejected requests are
measured too), the rate limiter runs before authentication (so key guessing is throttled per
address), then the key check, then the view.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from optilab.api import alerts, auth, board, departments, errors, instrument, ops, params, reports, systems
from optilab.api.config import ApiConfig
from optilab.api.context import ApiState
from optilab.api.db import Database


class JSONProvider(DefaultJSONProvider):
    """ISO-8601 times (Flask's default is RFC 822) and plain numbers for NUMERIC values.

    Never a NaN or Infinity token (``JSON.parse`` rejects them): a non-finite number, e.g. an
    aggregate over values stored before the bridge checked them, is answered as null.
    """

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, datetime | date):
            return o.isoformat()
        if isinstance(o, Decimal):
            return float(o)
        return DefaultJSONProvider.default(o)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        try:
            return super().dumps(obj, allow_nan=False, **kwargs)
        except ValueError:  # "Out of range float values are not JSON compliant": rare, so walk only now
            return super().dumps(_finite(obj), allow_nan=False, **kwargs)


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, Decimal):
        return o if o.is_finite() else None
    if isinstance(o, dict):
        return {key: _finite(value) for key, value in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(value) for value in o]
    return o


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(config: ApiConfig, clock: Callable[[], datetime] = _utcnow) -> Flask:
    """Build the API. The pool opens in the background: the app starts even while PostgreSQL is down."""
    app = Flask("optilab-api")
    app.json = JSONProvider(app)
    app.url_map.strict_slashes = False
    db = Database(config)
    registry = instrument.install(app, db.stats)
    checker = auth.KeyChecker(config.api_keys)

    def limit_key() -> str:
        return auth.client_id(checker) or "addr:" + (get_remote_address() or "unknown")

    Limiter(
        limit_key,
        app=app,
        storage_uri="memory://",
        headers_enabled=True,
        default_limits=[config.rate_limit] if config.rate_limit else [],
        enabled=bool(config.rate_limit),
    )
    auth.install(app, checker, config.auth_enabled, config.public_board)
    if config.cors_origins:
        CORS(
            app,
            origins=list(config.cors_origins),
            methods=["GET", "OPTIONS"],
            allow_headers=["X-API-Key", "Authorization"],
            max_age=600,
        )

        @app.after_request
        def vary_origin(response: Response) -> Response:
            # CORS headers depend on the request's Origin (flask-cors sends none for a foreign one):
            # without Vary a shared cache could hand one origin's answer to another
            response.vary.add("Origin")
            return response

    errors.register(app)

    @app.before_request
    def known_parameters() -> None:  # after the key check: unknown parameters are a 400 everywhere
        view = app.view_functions.get(request.endpoint or "")
        if view is not None and request.method != "OPTIONS":
            params.check_known(request.args, view)

    for blueprint in (systems.bp, departments.bp, reports.bp, board.bp, alerts.bp, ops.bp):
        app.register_blueprint(blueprint)
    app.extensions["optilab"] = ApiState(config, db, registry, clock)
    return app


def close_app(app: Flask) -> None:
    """Close the pool (tests and the CLI call this on shutdown)."""
    app.extensions["optilab"].db.close()
