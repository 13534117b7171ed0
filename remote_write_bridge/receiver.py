"""``POST /api/v1/write``: Prometheus remote write 1.0.

Status codes follow the spec and what Prometheus does with them: 204 stored; 4xx for a request
that can never succeed (400 corrupt body or labels, 413 too large, 415 wrong encoding) — Prometheus
drops it and moves on; 503 when the database cannot take it now — Prometheus retries with backoff.
429 is never used: Prometheus does not retry it by default and would lose the data.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import psycopg
from flask import Blueprint, Response, current_app, request
from psycopg_pool import PoolTimeout

from remote_write_bridge.facts import store_facts
from remote_write_bridge.mapping import Batch, to_batch
from remote_write_bridge.protocol import RemoteWriteError, check_headers, decode
from remote_write_bridge.store import DatabaseUnavailableError, UnstorableBatchError, utc_now_ms

if TYPE_CHECKING:
    from remote_write_bridge.app import Bridge
    from remote_write_bridge.config import BridgeConfig

log = logging.getLogger("optilab.bridge.receiver")

receiver_bp = Blueprint("remote_write", __name__)


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


@receiver_bp.post("/api/v1/write")
def write() -> Response:
    bridge = current_app.extensions["optilab_bridge"]
    metrics, config = bridge.metrics, bridge.config
    started = time.perf_counter()
    try:
        response = _handle(bridge, config)
    finally:
        metrics.duration.observe(time.perf_counter() - started)
    metrics.requests.labels(str(response.status_code)).inc()
    return response


def _store_facts(bridge: Bridge, batch: Batch) -> None:
    """Health state and OS (facts.py); a failure here is logged, the next scrape states them again."""
    try:
        store_facts(bridge.store.pool, batch)
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("health/OS facts not stored this time: %s", str(exc).splitlines()[0] if str(exc) else exc)


def _handle(bridge: Bridge, config: BridgeConfig) -> Response:
    metrics = bridge.metrics
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        return _text(413, f"body of {request.content_length} bytes exceeds the limit of "
                          f"{config.max_body_bytes}")
    try:
        check_headers(request.headers.get("Content-Type"), request.headers.get("Content-Encoding"))
        body = request.stream.read(config.max_body_bytes + 1)
        if len(body) > config.max_body_bytes:
            return _text(413, f"body exceeds the limit of {config.max_body_bytes} bytes")
        write_request = decode(body, config.max_body_bytes)
        batch = to_batch(write_request, bridge.labels, utc_now_ms(), config.retention_days,
                         config.future_tolerance_s)
    except RemoteWriteError as exc:
        log.info("refused remote-write request: %s %s", exc.status, exc)
        return _text(exc.status, str(exc))
    metrics.received.inc(batch.received)
    for reason, count in batch.dropped.items():
        metrics.dropped.labels(reason).inc(count)
    try:
        bridge.store.write(batch)
    except DatabaseUnavailableError as exc:
        metrics.dropped.labels("db_unavailable").inc(batch.stored_estimate)
        log.warning("database unavailable, asking the sender to retry: %s", exc)
        return _text(503, f"database unavailable, retry later: {exc}")
    except UnstorableBatchError as exc:
        metrics.dropped.labels("unstorable").inc(batch.stored_estimate)
        log.warning("refused a batch the database cannot store: %s", exc)
        return _text(400, f"the database refused a value of this request: {exc}")
    metrics.stored.inc(batch.stored_estimate)
    _store_facts(bridge, batch)
    newest = batch.time_range_ms()
    if newest is not None:
        bridge.note_sample(newest[1])
    return Response(status=204)
