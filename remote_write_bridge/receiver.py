"""``POST /api/v1/write``: Prometheus remote write 1.0.

Status codes follow the spec and what Prometheus does with them: 204 stored; 4xx for a request
that can never succeed (400 corrupt body or labels, 413 too large — compressed or as its snappy
preamble declares it decompressed —, 415 wrong encoding) — Prometheus drops it and moves on; 503 when
the database cannot take it now, or the bridge's in-flight byte budget (``budget.py``) stays spent —
Prometheus retries with backoff.
429 is never used: Prometheus does not retry it by default and would lose the data.

One series the database refuses for good (``dberrors``: e.g. an index row over the B-tree maximum)
never costs the others: the request's series are bisected (``isolate.py``), the refusing ones are
dropped and counted as ``unstorable``, the rest is stored and the answer is 204.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import psycopg
from flask import Blueprint, Response, request
from psycopg_pool import PoolTimeout

from optilab.remote_write_bridge import state
from optilab.remote_write_bridge.budget import OverBudgetError
from optilab.remote_write_bridge.config import BridgeConfig
from optilab.remote_write_bridge.facts import store_facts
from optilab.remote_write_bridge.isolate import RefusedError, isolate
from optilab.remote_write_bridge.mapping import Batch, to_batch
from optilab.remote_write_bridge.protocol import RemoteWriteError, check_headers, check_length, decode
from optilab.remote_write_bridge.state import Bridge
from optilab.remote_write_bridge.store import UnstorableBatchError, utc_now_ms
from optilab.toolkit.backends import DatabaseUnavailableError

log = logging.getLogger("optilab.bridge.receiver")

receiver_bp = Blueprint("remote_write", __name__)


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


@receiver_bp.post("/api/v1/write")
def write() -> Response:
    bridge = state.current()
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
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        return _text(413, f"body of {request.content_length} bytes exceeds the limit of {config.max_body_bytes}")
    try:
        check_headers(request.headers.get("Content-Type"), request.headers.get("Content-Encoding"))
        body = request.stream.read(config.max_body_bytes + 1)
        if len(body) > config.max_body_bytes:
            return _text(413, f"body exceeds the limit of {config.max_body_bytes} bytes")
        declared = check_length(body, config.max_decompressed_bytes)
    except RemoteWriteError as exc:
        log.info("refused remote-write request: %s %s", exc.status, exc)
        return _text(exc.status, str(exc))
    try:
        with bridge.inflight.reserve(declared):
            return _ingest(bridge, config, body)
    except OverBudgetError as exc:
        bridge.metrics.shed.inc()
        log.warning("overloaded, asking the sender to retry: %s", exc)
        return _text(503, f"overloaded, retry later: {exc}")


def _ingest(bridge: Bridge, config: BridgeConfig, body: bytes) -> Response:
    """Decode, map and store one body (its memory is reserved by the caller)."""
    metrics = bridge.metrics
    try:
        write_request = decode(body, config.max_decompressed_bytes)
        now_ms = utc_now_ms()
        batch = to_batch(write_request, bridge.labels, now_ms, config.retention_days, config.future_tolerance_s)
    except RemoteWriteError as exc:
        log.info("refused remote-write request: %s %s", exc.status, exc)
        return _text(exc.status, str(exc))
    del body
    metrics.received.inc(batch.received)
    for reason, count in batch.dropped.items():
        metrics.dropped.labels(reason).inc(count)
    try:
        refused = _store(bridge, write_request, batch, now_ms)
    except DatabaseUnavailableError as exc:
        metrics.dropped.labels("db_unavailable").inc(batch.stored_estimate)
        log.warning("database unavailable, asking the sender to retry: %s", exc)
        return _text(503, f"database unavailable, retry later: {exc}")
    metrics.dropped.labels("unstorable").inc(refused)
    metrics.stored.inc(batch.stored_estimate - refused)
    _store_facts(bridge, batch)
    newest = batch.time_range_ms()
    if newest is not None:
        bridge.note_sample(newest[1])
    return Response(status=204)


def _store(bridge: Bridge, write_request: Any, batch: Batch, now_ms: int) -> int:
    """Write ``batch``; on a permanent refusal store all but the refusing series. Returns the
    number of samples refused; raises DatabaseUnavailableError on a transient fault."""
    try:
        bridge.store.write(batch)
        return 0
    except UnstorableBatchError as exc:
        first = exc
    config = bridge.config

    def part_batch(series: Sequence[Any]) -> Batch:
        return to_batch(
            SimpleNamespace(timeseries=series), bridge.labels, now_ms, config.retention_days, config.future_tolerance_s
        )

    def write(series: Sequence[Any]) -> None:
        try:
            bridge.store.write(part_batch(series))
        except UnstorableBatchError as exc:
            raise RefusedError(str(exc)) from exc

    refused, writes = isolate(list(write_request.timeseries), write, config.isolation_max_writes)
    lost = part_batch(refused).stored_estimate
    names = sorted({label.value for series in refused for label in series.labels if label.name == "__name__"})
    log.warning(
        "the database refused %d series (%d samples) for good, stored the rest in %d more writes: %s; metrics: %s",
        len(refused),
        lost,
        writes,
        first,
        ", ".join(names[:5])[:200],
    )
    return lost
