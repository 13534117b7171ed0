"""Flask app factory of the bridge: remote-write receiver, health/metrics, Alertmanager webhook.

``create_app(config)`` wires the shared state (``Bridge``: config, store, label cache, metrics) into
``app.extensions["optilab_bridge"]`` and registers one blueprint per concern. The pool is opened
lazily (``open=False`` + ``open(wait=False)``) so the bridge starts, and answers 503, while the
database is still down.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from flask import Flask

from remote_write_bridge.budget import ByteBudget
from remote_write_bridge.config import BridgeConfig, label_limits, session_settings
from remote_write_bridge.health import health_bp
from remote_write_bridge.mapping import LabelCache
from remote_write_bridge.receiver import receiver_bp
from remote_write_bridge.selfmetrics import BridgeMetrics
from remote_write_bridge.store import Store
from remote_write_bridge.webhook import webhook_bp
from timescale.maintenance import MaintenanceResult, MaintenanceThread

log = logging.getLogger("optilab.bridge")


class Bridge:
    """State shared by the request threads of one app."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.metrics = BridgeMetrics()
        self.labels = LabelCache(config.allow_list, label_limits=label_limits(config))
        self.store = Store(config.dsn, config.pool_min, config.pool_max, config.pool_timeout,
                           session_settings(config.statement_timeout_s, config.lock_timeout_s))
        self.inflight = ByteBudget(config.max_inflight_bytes, config.inflight_wait_s)
        self.newest_sample_ms: int | None = None
        self._lock = threading.Lock()
        self.maintenance: MaintenanceThread | None = None

    def note_sample(self, ms: int) -> None:
        with self._lock:
            if self.newest_sample_ms is None or ms > self.newest_sample_ms:
                self.newest_sample_ms = ms
                self.metrics.newest_sample.set(ms / 1000)

    def start(self) -> None:
        """Open the pool, log the storage mode, and start plain-PostgreSQL maintenance."""
        self.store.open()
        mode = self.store.storage_mode()
        log.info("storage mode: %s", mode or "unknown (database not reachable yet)")
        if self.config.maintenance_interval_s > 0 and mode != "timescaledb":  # unknown: it checks each run
            self.maintenance = MaintenanceThread(
                lambda: psycopg.connect(self.config.dsn, autocommit=True, connect_timeout=3),
                self.config.maintenance_interval_s, self.config.retention_days, self._maintained)
            self.maintenance.start()

    def _maintained(self, result: MaintenanceResult | None) -> None:
        self.metrics.maintenance_runs.labels("ok" if result else "error").inc()
        if result and result.partitions_dropped:
            self.store.forget_partitions()

    def stop(self) -> None:
        if self.maintenance is not None:
            self.maintenance.stop()
        self.store.close()


def create_app(config: BridgeConfig, start: bool = True) -> Flask:
    """The bridge as a WSGI app; ``start=False`` leaves pool and maintenance for the caller."""
    app = Flask("remote_write_bridge")
    # Upper-case top-level keys of the YAML file (e.g. OPTILAB_AMQP_URL) are Flask settings for the
    # other blueprints; the remote_write: section was consumed by config.validate().
    app.config.update({key: value for key, value in config.sections.items() if key.isupper()})
    bridge = Bridge(config)
    app.extensions["optilab_bridge"] = bridge
    app.register_blueprint(receiver_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(webhook_bp)  # Alertmanager webhook → RabbitMQ (or the database directly)
    if start:
        bridge.start()
    return app

