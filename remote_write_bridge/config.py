"""Bridge configuration: defaults, an optional YAML file, and validation with readable errors.

``validate(raw)`` is a pure function from the parsed YAML to a ``BridgeConfig`` that lists every
problem at once, each naming its field. Sections the remote-write part does not know are kept
untouched in ``BridgeConfig.sections``. The webhook's broker and delivery settings
(:class:`AlertSettings`: upper-case keys of the file over the environment) are read and checked
once, by :func:`alert_settings` at start, never per request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from optilab.remote_write_bridge.amqp import Topology, amqp_url_from_env
from optilab.remote_write_bridge.limits import LabelLimits
from optilab.toolkit.backends import dsn_problem, usable_amqp_url

# Bounds of every statement on the bridge's and the consumer's database sessions (seconds). A lock
# fails fast; a statement may take longer (a 400,000-sample insert took >10 s on this shared box
# under load), but ends with time for a 503 inside Prometheus' 30 s remote_timeout.
WRITE_STATEMENT_TIMEOUT_S = 20.0
WRITE_LOCK_TIMEOUT_S = 5.0

DEFAULT_ALLOW_LIST = (
    "node_load1",
    "node_load5",
    "node_load15",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "optilab_logged_in_users",
    "optilab_probe_success",
    "optilab_probe_duration_seconds",
)


class ConfigError(ValueError):
    """Configuration values are wrong; ``errors`` lists each, naming its field (the message joins them)."""

    def __init__(self, errors: str | list[str]) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


DELIVERIES = ("rabbitmq", "direct")


@dataclass(frozen=True)
class AlertSettings:
    """How the Alertmanager webhook delivers: through RabbitMQ (``amqp_url``, ``topology``) or
    ``direct`` into the database. ``amqp_url`` carries the broker password: never print it."""

    delivery: str = "rabbitmq"
    amqp_url: str = field(default_factory=amqp_url_from_env, repr=False)
    topology: Topology = field(default_factory=Topology)


@dataclass(frozen=True)
class BridgeConfig:
    dsn: str = ""
    # metric names (other than the pivoted system_* series) stored in the generic samples table
    allow_list: frozenset[str] = frozenset(DEFAULT_ALLOW_LIST)
    # compressed request bodies larger than this get 413
    max_body_bytes: int = 8 * 1024 * 1024
    # bodies whose snappy preamble declares more than this decompressed get 413 (before decompressing)
    max_decompressed_bytes: int = 16 * 1024 * 1024
    # decompressed bytes all requests may hold at once; a request waits up to inflight_wait_s, then 503
    max_inflight_bytes: int = 32 * 1024 * 1024
    inflight_wait_s: float = 5.0
    pool_min: int = 2
    pool_max: int = 8
    # seconds a request waits for a database connection before answering 503 (Prometheus retries)
    pool_timeout: float = 5.0
    # raw samples older than this are dropped (they would land in already-expired partitions/chunks)
    retention_days: int = 30
    # samples further than this in the future are dropped (a wrong clock would create partitions)
    future_tolerance_s: int = 3600
    # plain-PostgreSQL maintenance (rollups, partitions, retention) period; 0 disables the thread
    maintenance_interval_s: float = 60.0
    # per-series label bounds checked before the database sees them (remote_write_bridge/limits.py)
    max_labels: int = 32
    max_label_name_bytes: int = 128
    max_label_value_bytes: int = 1024
    max_series_bytes: int = 2048
    # writes one request may spend isolating series the database refuses for good (isolate.py)
    isolation_max_writes: int = 64
    # every statement of the bridge's sessions is bounded, so a table lock or a stuck query becomes
    # a 503 well inside Prometheus' 30 s remote_timeout (and it retries) instead of a hang
    statement_timeout_s: float = WRITE_STATEMENT_TIMEOUT_S
    lock_timeout_s: float = WRITE_LOCK_TIMEOUT_S
    # /health answers 503 while a write has been in flight longer than this
    stuck_write_s: float = 30.0  # Prometheus gives up on a request after its 30 s remote_timeout
    sections: dict[str, Any] = field(default_factory=dict)
    # the webhook's settings, read once by load(); None: create_app reads them (alert_settings)
    alerts: AlertSettings | None = None


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "allow_list": list,
    "max_body_bytes": int,
    "max_decompressed_bytes": int,
    "max_inflight_bytes": int,
    "inflight_wait_s": (int, float),
    "pool_min": int,
    "pool_max": int,
    "pool_timeout": (int, float),
    "retention_days": int,
    "future_tolerance_s": int,
    "maintenance_interval_s": (int, float),
    "max_labels": int,
    "max_label_name_bytes": int,
    "max_label_value_bytes": int,
    "max_series_bytes": int,
    "isolation_max_writes": int,
    "statement_timeout_s": (int, float),
    "lock_timeout_s": (int, float),
    "stuck_write_s": (int, float),
}


def validate(raw: dict[str, Any] | None, dsn: str = "") -> BridgeConfig:
    """Check the ``remote_write:`` section of ``raw`` and build the config; :class:`ConfigError`
    lists every problem found, not only the first."""
    errors: list[str] = []
    # a DSN libpq cannot parse is refused at start (retrying it would look like an outage), unshown
    if dsn and (problem := dsn_problem(dsn)):
        errors.append(f"dsn: {problem}")
    raw = dict(raw or {})
    section = raw.pop("remote_write", None) or {}
    if not isinstance(section, dict):
        errors.append("remote_write: must be a mapping")
        section = {}
    values: dict[str, Any] = {}
    for key, value in section.items():
        expected = _FIELDS.get(key)
        if expected is None:
            errors.append(f"remote_write.{key}: unknown field (known: {', '.join(sorted(_FIELDS))})")
        elif isinstance(value, bool) or not isinstance(value, expected):
            errors.append(f"remote_write.{key}: expected {_type_name(expected)}, got {value!r}")
        else:
            values[key] = value
    if "allow_list" in values:
        names = values.pop("allow_list")
        bad = [name for name in names if not isinstance(name, str) or not name]
        if bad:
            errors.append(f"remote_write.allow_list: metric names must be non-empty strings, got {bad!r}")
        else:
            values["allow_list"] = frozenset(names)
    for key in (
        "max_body_bytes",
        "max_decompressed_bytes",
        "max_inflight_bytes",
        "pool_min",
        "pool_max",
        "retention_days",
        "max_labels",
        "max_label_name_bytes",
        "max_label_value_bytes",
        "max_series_bytes",
        "isolation_max_writes",
    ):
        if key in values and values[key] < 1:
            errors.append(f"remote_write.{key}: must be at least 1, got {values[key]}")
            del values[key]  # the default stands in, so the checks below still run
    config = BridgeConfig(dsn=dsn, sections=raw, **values)
    for key in ("statement_timeout_s", "lock_timeout_s", "stuck_write_s", "inflight_wait_s"):
        if getattr(config, key) <= 0:
            errors.append(f"remote_write.{key}: must be positive, got {getattr(config, key)}")
    if config.max_decompressed_bytes > config.max_inflight_bytes:
        errors.append(
            f"remote_write.max_decompressed_bytes ({config.max_decompressed_bytes}) exceeds "
            f"max_inflight_bytes ({config.max_inflight_bytes}): such a request could never run"
        )
    if config.pool_min > config.pool_max:
        errors.append(f"remote_write.pool_min ({config.pool_min}) exceeds pool_max ({config.pool_max})")
    if errors:
        raise ConfigError(errors)
    return config


def alert_settings(sections: Mapping[str, Any], environ: Mapping[str, str]) -> AlertSettings:
    """The webhook's settings: ``OPTILAB_ALERTS_DELIVERY``, ``OPTILAB_AMQP_URL``, ``OPTILAB_AMQP_PREFIX``
    from the file's upper-case keys, else the environment. Raises :class:`ConfigError` listing all."""
    merged = {**environ, **{k: v for k, v in sections.items() if k.isupper()}}
    delivery = str(merged.get("OPTILAB_ALERTS_DELIVERY") or "rabbitmq").strip().lower()
    settings = AlertSettings(delivery, amqp_url_from_env(merged), Topology.from_env(merged))
    errors = []
    if delivery not in DELIVERIES:
        errors.append(f"OPTILAB_ALERTS_DELIVERY: expected rabbitmq or direct, got {delivery!r}")
    if delivery != "direct" and not usable_amqp_url(settings.amqp_url):  # the URL itself is not shown
        errors.append("OPTILAB_AMQP_URL: not an amqp:// or amqps:// URL")
    if errors:
        raise ConfigError(errors)
    return settings


def session_settings(
    statement_timeout_s: float = WRITE_STATEMENT_TIMEOUT_S, lock_timeout_s: float = WRITE_LOCK_TIMEOUT_S
) -> dict[str, str]:
    """PostgreSQL settings for a writing session (``SET`` on connect, so a DSN's own options stay)."""
    return {
        "statement_timeout": f"{round(statement_timeout_s * 1000)}ms",
        "lock_timeout": f"{round(lock_timeout_s * 1000)}ms",
    }


def label_limits(config: BridgeConfig) -> LabelLimits:
    return LabelLimits(
        config.max_labels, config.max_label_name_bytes, config.max_label_value_bytes, config.max_series_bytes
    )


def load(path: Path | None, dsn: str, environ: Mapping[str, str] | None = None) -> BridgeConfig:
    """Read the YAML file at ``path`` (optional), validate it and the webhook's settings (from the
    file and ``environ``, default ``os.environ``); one :class:`ConfigError` lists every problem."""
    raw: Any = {}
    if path is not None:
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
    errors: list[str] = []
    config = alerts = None
    try:
        config = validate(raw, dsn)
    except ConfigError as exc:
        errors += exc.errors
    try:
        alerts = alert_settings(raw, os.environ if environ is None else environ)
    except ConfigError as exc:
        errors += exc.errors
    if config is None or alerts is None:
        raise ConfigError(errors)
    return replace(config, alerts=alerts)


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(t.__name__ for t in types)
