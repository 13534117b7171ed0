"""Flask app factory of the bridge: remote-write receiver, health/metrics, Alertmanager webhook.

``create_app(config)`` installs the shared state (``state.Bridge``: config, store, label cache,
metrics) and registers one blueprint per concern. The pool is opened
lazily (``open=False`` + ``open(wait=False)``) so the bridge starts, and answers 503, while the
database is still down.
"""

from __future__ import annotations

from flask import Flask

from optilab.remote_write_bridge.config import BridgeConfig
from optilab.remote_write_bridge.health import health_bp
from optilab.remote_write_bridge.receiver import receiver_bp
from optilab.remote_write_bridge.state import Bridge, install
from optilab.remote_write_bridge.webhook import webhook_bp


def create_app(config: BridgeConfig, start: bool = True) -> Flask:
    """The bridge as a WSGI app; ``start=False`` leaves pool and maintenance for the caller."""
    app = Flask("remote_write_bridge")
    bridge = Bridge(config)  # every setting a blueprint reads, checked once (no Flask config per request)
    install(app, bridge)
    app.register_blueprint(receiver_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(webhook_bp)  # Alertmanager webhook → RabbitMQ (or the database directly)
    if start:
        bridge.start()
    return app
