"""Every error leaves the API as JSON ``{"status", "error", "message"}`` with the right status code.

Clients (and schemathesis) can rely on one error shape. Unexpected exceptions are logged here with
their traceback and answered with a bare 500, so no stack trace or SQL ever reaches a client.
"""

from __future__ import annotations

import logging

import psycopg
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from optilab.api.db import DatabaseUnavailableError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5


def error_response(status: int, error: str, message: str) -> Response:
    response = jsonify({"status": status, "error": error, "message": message})
    response.status_code = status
    return response


def _http_error(exc: HTTPException) -> Response:
    """Keep werkzeug's headers (``Allow`` on 405, ``Retry-After`` on 429), replace the HTML body."""
    status = exc.code or 500
    message = exc.description or exc.name
    if status == 429:
        message = f"rate limit exceeded ({exc.description})"
    response = error_response(status, exc.name, message)
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _unavailable(exc: DatabaseUnavailableError) -> Response:
    response = error_response(503, "Service Unavailable", str(exc))
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def _schema_missing(exc: Exception) -> Response:
    log.error("database schema missing: %s", type(exc).__name__)
    return error_response(503, "Service Unavailable", "database schema missing; run optilab-migrate")


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return error_response(500, "Internal Server Error", "internal error; see the server log")


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseUnavailableError, _unavailable)
    app.register_error_handler(psycopg.errors.UndefinedTable, _schema_missing)
    app.register_error_handler(psycopg.errors.UndefinedFunction, _schema_missing)
    app.register_error_handler(Exception, _unexpected)
