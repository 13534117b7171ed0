"""Alertmanager webhook: ``POST /api/v1/alerts`` publishes each alert to RabbitMQ.

Alertmanager retries a notification only on 5xx, so the answer is 200 only once the broker has
confirmed every alert of the payload, 503 when it has not (Alertmanager tries again, the consumer
dedupes), and 400 for a payload that no retry can fix. Each waitress thread keeps its own
:class:`Publisher` because pika connections are not thread-safe.

Configuration (the bridge file's upper-case keys first, then the environment; read and checked once
at start into :class:`~remote_write_bridge.config.AlertSettings`): ``OPTILAB_AMQP_URL`` and
``OPTILAB_AMQP_PREFIX`` (names ``PREFIX.events``, ``PREFIX.dlx``, ``PREFIX.dead``).

``OPTILAB_ALERTS_DELIVERY=direct`` skips the broker: each alert is stored through the bridge's own
database pool with the consumer's idempotent writer, and the answer is 200 only after the commit
(503 when the database is down, so Alertmanager retries). It is for a site or a demo without
RabbitMQ; the queued path stays the default because it decouples Alertmanager from database outages.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from flask import Blueprint, Response, jsonify, request
from psycopg_pool import PoolTimeout

from optilab.remote_write_bridge import event_store, state
from optilab.remote_write_bridge.amqp import Publisher, PublishError, connect
from optilab.remote_write_bridge.config import AlertSettings
from optilab.toolkit.contract import InvalidEventError, alert_message, check_alert

log = logging.getLogger("optilab.bridge.webhook")

webhook_bp = Blueprint("alerts_webhook", __name__)

# Alertmanager notifications are small; a larger body is not from Alertmanager.
MAX_BODY_BYTES = 4 * 1024 * 1024

_local = threading.local()


def broker_warning(settings: AlertSettings) -> str | None:
    """One bounded connection attempt at start: a warning when the broker is unreachable, so an
    admin learns it before Alertmanager's first notification is answered 503."""
    if settings.delivery == "direct":
        return None
    try:
        connect(settings.amqp_url).close()
    except Exception as exc:  # any pika/socket failure: the webhook will keep retrying per request
        return (
            f"RabbitMQ is not reachable ({type(exc).__name__}): the alert webhook answers 503 until it is; "
            f"start the broker, fix OPTILAB_AMQP_URL, or set OPTILAB_ALERTS_DELIVERY=direct to store "
            f"alerts without a broker"
        )
    return None


def _publisher() -> Publisher:
    """This thread's publisher, replaced when the app's settings differ (tests build several apps)."""
    settings = state.current().alerts
    url, topology = settings.amqp_url, settings.topology
    publisher: Publisher | None = getattr(_local, "publisher", None)
    if publisher is None or (publisher.url, publisher.topology) != (url, topology):
        if publisher is not None:
            publisher.close()
        publisher = _local.publisher = Publisher(url, topology)
    return publisher


def parse_payload(payload: Any) -> tuple[list[dict[str, Any]], str, str]:
    """The alerts, receiver and externalURL of a v4 webhook payload, or :class:`InvalidEventError`."""
    if not isinstance(payload, dict):
        raise InvalidEventError("payload: expected a JSON object")
    if payload.get("version") != "4":
        raise InvalidEventError(f'version: expected "4", got {payload.get("version")!r}')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidEventError("alerts: expected a list")
    receiver, external_url = payload.get("receiver", ""), payload.get("externalURL", "")
    if not isinstance(receiver, str) or not isinstance(external_url, str):
        raise InvalidEventError("receiver/externalURL: expected strings")
    return [check_alert(alert, f"alerts[{i}].") for i, alert in enumerate(alerts)], receiver, external_url


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"status": "error", "error": message}), status


@webhook_bp.post("/api/v1/alerts")
def receive_alerts() -> tuple[Response, int]:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    payload = request.get_json(force=True, silent=True)
    if payload is None:
        return _error(400, "body is not JSON")
    try:
        alerts, receiver, external_url = parse_payload(payload)
    except InvalidEventError as exc:
        return _error(400, str(exc))
    if state.current().alerts.delivery == "direct":
        return _store_directly(alerts, receiver, external_url)
    try:
        published = _publisher().publish(alert_message(a, receiver, external_url) for a in alerts)
    except PublishError as exc:
        log.error("alerts not accepted, Alertmanager will retry: %s", exc)
        return _error(503, "message broker unavailable; retry")
    return jsonify({"status": "ok", "published": published}), 200


def _store_directly(alerts: list[dict[str, Any]], receiver: str, external_url: str) -> tuple[Response, int]:
    """Store the payload's alerts in one transaction of the bridge's pool (no broker)."""
    store = state.current().store
    try:
        with store.pool.connection() as conn, conn.transaction():
            for alert in alerts:
                event_store.store_alert(
                    conn, {"type": "alert", "receiver": receiver, "externalURL": external_url, "alert": alert}
                )
    except (psycopg.Error, PoolTimeout) as exc:
        log.error("alerts not stored, Alertmanager will retry: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return _error(503, "database unavailable; retry")
    return jsonify({"status": "ok", "stored": len(alerts)}), 200
