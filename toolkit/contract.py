"""What crosses OptiLab's processes: event bodies, health states, failure reasons, AMQP names.

The exporter publishes ``health`` and ``discovery`` events, the bridge's webhook publishes ``alert``
events, the consumer validates and stores all three, and the API reports the health states the
exporter assigned. Each side imports the names below instead of spelling them again, so a change
of the wire format is a change here (and in docs/interfaces.md, which this module implements).

Pure: no broker client and no database driver, so every service can import it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

#: Every event body carries ``"version": EVENT_VERSION``; the consumer dead-letters any other.
EVENT_VERSION = 1

#: A host's health, in order of worsening (exporter/health.py moves a host along it).
HEALTH_STATES = ("healthy", "degraded", "offline", "dead")
#: Alertmanager v4 alert statuses.
ALERT_STATUSES = ("firing", "resolved")

#: Why a probe failed (``optilab_probe_error_info{reason}``, health events' ``reason``).
PROBE_REASONS = ("timeout", "refused", "auth", "hostkey", "protocol", "unreachable", "overload")
#: Reasons that blame the bastion, not the lab machine behind it (exporter/jump.py raises them).
JUMP_REASONS = ("jump_unreachable", "jump_timeout", "jump_hostkey", "jump_auth", "jump_refused", "jump_protocol")

#: ``OPTILAB_AMQP_PREFIX`` names the exchange ``PREFIX.events``, its queue, ``PREFIX.dlx`` and ``PREFIX.dead``.
DEFAULT_AMQP_PREFIX = "optilab"
DEFAULT_EXCHANGE = f"{DEFAULT_AMQP_PREFIX}.events"


def now_iso() -> str:
    """The ``at`` of an event: ISO-8601 UTC with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- building bodies -----------------------------------------------------------------------------


def health_body(
    instance: str,
    hostname: str,
    ip: str,
    department: str,
    before: str,
    after: str,
    reason: str | None,
    at: str | None = None,
) -> dict[str, Any]:
    """A ``health`` event: ``instance`` moved from ``before`` to ``after`` (routing key ``health``)."""
    return {
        "type": "health",
        "version": EVENT_VERSION,
        "instance": instance,
        "hostname": hostname,
        "ip": ip,
        "department": department,
        "from": before,
        "to": after,
        "reason": reason,
        "at": at or now_iso(),
    }


def discovery_body(
    instance: str,
    hostname: str,
    ip: str,
    department: str,
    os_type: str | None,
    os_version: str | None,
    at: str | None = None,
) -> dict[str, Any]:
    """A ``discovery`` event: a host ``optilab-exporter scan`` found (routing key ``discovery``)."""
    return {
        "type": "discovery",
        "version": EVENT_VERSION,
        "instance": instance,
        "hostname": hostname,
        "ip": ip,
        "department": department,
        "os_type": os_type,
        "os_version": os_version,
        "at": at or now_iso(),
    }


def alert_message(alert: dict[str, Any], receiver: str, external_url: str) -> tuple[str, bytes]:
    """Routing key and body for one Alertmanager alert (already validated)."""
    body = {
        "type": "alert",
        "version": EVENT_VERSION,
        "receiver": receiver,
        "externalURL": external_url,
        "alert": alert,
    }
    return f"alert.{alert['status']}", json.dumps(body, separators=(",", ":")).encode()


# -- validating bodies ---------------------------------------------------------------------------


class InvalidEventError(ValueError):
    """A body that can never be stored, whatever the retries; the message says why."""


def parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidEventError(f"{field}: expected an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEventError(f"{field}: not an ISO-8601 time: {value[:64]!r}") from None
    if parsed.tzinfo is None:
        raise InvalidEventError(f"{field}: time without a time zone: {value[:64]!r}")
    return parsed


def _text(doc: Mapping[str, Any], field: str, prefix: str = "", required: bool = True) -> str | None:
    value = doc.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidEventError(f"{prefix}{field}: expected a non-empty string")
    return value


def _string_map(doc: Mapping[str, Any], field: str, prefix: str = "") -> dict[str, str]:
    value = doc.get(field, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidEventError(f"{prefix}{field}: expected an object of strings")
    return value


def check_alert(alert: Any, prefix: str = "alert.") -> dict[str, Any]:
    """Validate one Alertmanager v4 alert; the webhook answers 400 and the consumer dead-letters."""
    if not isinstance(alert, dict):
        raise InvalidEventError(f"{prefix[:-1]}: expected an object")
    status = _text(alert, "status", prefix)
    if status not in ALERT_STATUSES:
        raise InvalidEventError(f"{prefix}status: expected firing or resolved, got {status!r}")
    _text(alert, "fingerprint", prefix)
    labels = _string_map(alert, "labels", prefix)
    if not labels.get("alertname"):
        raise InvalidEventError(f"{prefix}labels.alertname: missing")
    _string_map(alert, "annotations", prefix)
    parse_time(alert.get("startsAt"), f"{prefix}startsAt")
    if status == "resolved":
        parse_time(alert.get("endsAt"), f"{prefix}endsAt")
    return alert


def parse_event(body: bytes) -> dict[str, Any]:
    """Decode and validate an event body (docs/interfaces.md), or raise :class:`InvalidEventError`."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEventError(f"body is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidEventError("body: expected a JSON object")
    if event.get("version") != EVENT_VERSION:
        raise InvalidEventError(f"version: expected {EVENT_VERSION}, got {event.get('version')!r}")
    kind = event.get("type")
    if kind == "alert":
        check_alert(event.get("alert"))
    elif kind in ("health", "discovery"):
        _text(event, "instance")
        parse_time(event.get("at"), "at")
        for field in ("hostname", "ip", "department", "os_type", "os_version", "from", "reason"):
            _text(event, field, required=False)
        if kind == "health" and event.get("to") not in HEALTH_STATES:
            raise InvalidEventError(f"to: expected one of {'|'.join(HEALTH_STATES)}, got {event.get('to')!r}")
    else:
        raise InvalidEventError(f"type: unknown event type {kind!r}")
    return event
