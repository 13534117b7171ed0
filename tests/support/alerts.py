"""Alertmanager webhook payloads as Alertmanager 0.25 sends them, for the webhook, consumer and
end-to-end tests."""

from __future__ import annotations

from typing import Any


def alert(
    instance: str = "127.0.1.5:22",
    status: str = "firing",
    name: str = "OptiLabHostDown",
    starts_at: str = "2026-11-28T01:00:00.123456789Z",
    fingerprint: str | None = None,
    department: str = "physics",
) -> dict[str, Any]:
    """One alert as Alertmanager 0.25 sends it (nanosecond times, zero endsAt while firing)."""
    return {
        "status": status,
        "labels": {
            "alertname": name,
            "instance": instance,
            "department": department,
            "severity": "critical",
            "alert_type": "host_down",
            "job": "node",
        },
        "annotations": {"summary": f"Lab machine {instance} is down", "runbook_url": "docs/alerts.md#x"},
        "startsAt": starts_at,
        "endsAt": "2026-11-28T01:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": fingerprint or f"fp-{name}-{instance}",
    }


def payload(*alerts: dict[str, Any], receiver: str = "optilab-oncall") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": alerts[0]["status"],
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }
