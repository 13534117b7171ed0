"""The bridge's shared state: what the request threads of one app share (config, store, label cache,
metrics, in-flight budget, maintenance), and the one way a blueprint finds it (:func:`current`).

Its own module, so blueprints (receiver, health, webhook) and the app factory import it without
importing each other.
"""

from __future__ import annotations

import logging
import os
import threading

import psycopg
from flask import Flask, current_app

from optilab.remote_write_bridge.budget import ByteBudget
from optilab.remote_write_bridge.config import (
    AlertSettings,
    BridgeConfig,
    alert_settings,
    label_limits,
    session_settings,
)
from optilab.remote_write_bridge.mapping import LabelCache
from optilab.remote_write_bridge.selfmetrics import BridgeMetrics
from optilab.remote_write_bridge.store import Store
from optilab.timescale.maintenance import MaintenanceResult, MaintenanceThread

log = logging.getLogger("optilab.bridge.state")

EXTENSION = "optilab_bridge"


class Bridge:
    """State shared by the request threads of one app."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        # read once here, never per request: load() has them, a validate()-only config gets the environment's
        self.alerts: AlertSettings = config.alerts or alert_settings(config.sections, os.environ)
        self.metrics = BridgeMetrics()
        self.labels = LabelCache(config.allow_list, label_limits=label_limits(config))
        self.store = Store(
            config.dsn,
            config.pool_min,
            config.pool_max,
            config.pool_timeout,
            session_settings(config.statement_timeout_s, config.lock_timeout_s),
        )
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
                self.config.maintenance_interval_s,
                self.config.retention_days,
                self._maintained,
            )
            self.maintenance.start()

    def _maintained(self, result: MaintenanceResult | None) -> None:
        self.metrics.maintenance_runs.labels("ok" if result else "error").inc()
        if result and result.partitions_dropped:
            self.store.forget_partitions()

    def stop(self) -> None:
        if self.maintenance is not None:
            self.maintenance.stop()
        self.store.close()


def install(app: Flask, bridge: Bridge) -> None:
    """Make ``bridge`` the state of ``app`` (what :func:`current` returns in its requests)."""
    app.extensions[EXTENSION] = bridge


def of(app: Flask) -> Bridge:
    """The state installed in ``app``."""
    bridge: Bridge = app.extensions[EXTENSION]
    return bridge


def current() -> Bridge:
    """The state of the app handling this request."""
    return of(current_app)
