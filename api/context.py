"""Per-app state for views (config, pool, metrics registry, clock), kept apart to avoid import cycles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from prometheus_client import CollectorRegistry

from optilab.api.config import ApiConfig
from optilab.api.db import Database


@dataclass
class ApiState:
    """What views need, stored as ``app.extensions["optilab"]``; the clock is injectable for tests."""

    config: ApiConfig
    db: Database
    registry: CollectorRegistry
    clock: Callable[[], datetime]


def state() -> ApiState:
    return current_app.extensions["optilab"]
