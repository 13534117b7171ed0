"""Idempotent SQL for OptiLab events (tables of docs/interfaces.md), one function per event type.

RabbitMQ delivers at least once, and Alertmanager re-sends a group every repeat_interval, so every
statement here can run twice with the same event and leave the same rows. Events may also arrive
out of order when several consumers share the queue: a resolved alert stays resolved, and a host's
``health_state`` is always the state of its newest history row. Callers own the transaction.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from optilab.toolkit.contract import parse_time

# Reachability implied by a health state, for status_history.status ('online'|'offline').
_STATUS_OF_HEALTH = {"healthy": "online", "degraded": "online", "offline": "offline", "dead": "offline"}

_UPSERT_ALERT = """
INSERT INTO alerts (system_id, fingerprint, starts_at, ends_at, status, alertname, alert_type,
                    severity, department, instance, message, labels, annotations, updated_at)
VALUES ((SELECT id FROM systems WHERE instance = %(instance)s), %(fingerprint)s, %(starts_at)s,
        %(ends_at)s, %(status)s, %(alertname)s, %(alert_type)s, %(severity)s, %(department)s,
        %(instance)s, %(message)s, %(labels)s, %(annotations)s, now())
ON CONFLICT (fingerprint, starts_at) DO UPDATE
   SET status = EXCLUDED.status, ends_at = EXCLUDED.ends_at, message = EXCLUDED.message,
       annotations = EXCLUDED.annotations, system_id = COALESCE(alerts.system_id, EXCLUDED.system_id),
       updated_at = now()
 WHERE alerts.status <> 'resolved'
"""

_UPSERT_SYSTEM = """
INSERT INTO systems (instance, hostname, ip_address, department, os_type, os_version)
VALUES (%(instance)s, %(hostname)s, %(ip)s, %(department)s, %(os_type)s, %(os_version)s)
ON CONFLICT (instance) DO UPDATE
   SET hostname = COALESCE(EXCLUDED.hostname, systems.hostname),
       ip_address = COALESCE(EXCLUDED.ip_address, systems.ip_address),
       department = COALESCE(EXCLUDED.department, systems.department),
       os_type = COALESCE(EXCLUDED.os_type, systems.os_type),
       os_version = COALESCE(EXCLUDED.os_version, systems.os_version)
RETURNING id
"""

_INSERT_HISTORY = """
INSERT INTO status_history (system_id, timestamp, status, health_state, reason)
SELECT %(system_id)s, %(at)s, %(status)s, %(to)s, %(reason)s
 WHERE NOT EXISTS (SELECT 1 FROM status_history
                    WHERE system_id = %(system_id)s AND timestamp = %(at)s AND health_state = %(to)s)
"""

# The newest transition wins, whatever order the events were consumed in.
_SET_HEALTH = """
UPDATE systems SET health_state = latest.health_state
  FROM (SELECT health_state FROM status_history
         WHERE system_id = %(system_id)s AND health_state IS NOT NULL
         ORDER BY timestamp DESC LIMIT 1) AS latest
 WHERE systems.id = %(system_id)s
"""


def store_alert(conn: psycopg.Connection, event: dict[str, Any]) -> None:
    """Insert the alert, or update its row (same fingerprint and startsAt) to the newer state."""
    alert = event["alert"]
    labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
    resolved = alert["status"] == "resolved"
    conn.execute(
        _UPSERT_ALERT,
        {
            "instance": labels.get("instance"),
            "fingerprint": alert["fingerprint"],
            "starts_at": parse_time(alert["startsAt"], "alert.startsAt"),
            "ends_at": parse_time(alert["endsAt"], "alert.endsAt") if resolved else None,
            "status": alert["status"],
            "alertname": labels["alertname"],
            "alert_type": labels.get("alert_type", labels["alertname"]),
            "severity": labels.get("severity"),
            "department": labels.get("department"),
            "message": annotations.get("summary") or annotations.get("description") or labels["alertname"],
            "labels": Jsonb(labels),
            "annotations": Jsonb(annotations),
        },
    )


def upsert_system(conn: psycopg.Connection, event: dict[str, Any]) -> int:
    """The system's id, creating it from what the event knows; known fields are never blanked."""
    row = conn.execute(
        _UPSERT_SYSTEM,
        {
            "instance": event["instance"],
            "hostname": event.get("hostname"),
            "ip": event.get("ip") or event["instance"].rpartition(":")[0] or None,
            "department": event.get("department"),
            "os_type": event.get("os_type"),
            "os_version": event.get("os_version"),
        },
    ).fetchone()
    assert row is not None  # RETURNING always yields the inserted or updated row
    return int(row[0])


def store_health(conn: psycopg.Connection, event: dict[str, Any]) -> None:
    """Record one health transition and make the newest one the system's ``health_state``."""
    system_id = upsert_system(conn, event)
    conn.execute(
        _INSERT_HISTORY,
        {
            "system_id": system_id,
            "at": parse_time(event["at"], "at"),
            "status": _STATUS_OF_HEALTH[event["to"]],
            "to": event["to"],
            "reason": event.get("reason"),
        },
    )
    conn.execute(_SET_HEALTH, {"system_id": system_id})


def store_discovery(conn: psycopg.Connection, event: dict[str, Any]) -> None:
    upsert_system(conn, event)


_STORERS = {"alert": store_alert, "health": store_health, "discovery": store_discovery}


def store_event(conn: psycopg.Connection, event: dict[str, Any]) -> None:
    """Dispatch a validated event (``contract.parse_event``) to its table writer."""
    _STORERS[event["type"]](conn, event)
