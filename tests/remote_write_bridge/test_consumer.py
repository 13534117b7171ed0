"""The event consumer (`python -m optilab.remote_write_bridge.consumer`, what `optilab-bridge consume` runs)
against the machine's RabbitMQ and a migrated database: alerts stored once per (fingerprint,
startsAt) and resolved in place, health and discovery events into systems/status_history, poison
messages in the dead-letter queue with their reason, several consumers side by side, and SIGTERM
losing nothing. Outage tests (broker restart, database down) live in test_alerts_e2e.py."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import psycopg

from optilab.exporter import events
from optilab.exporter.health import Transition
from optilab.exporter.targets import HostLabels
from optilab.toolkit.contract import alert_message
from tests.fixtures.procs import wait_for
from tests.fixtures.rabbitmq import AmqpNames, drain
from tests.support.alerts import alert
from tests.support.consumer import (
    ConsumerFactory,
    consumers,
    event,
    finish,
    publish,
    rows,
    wait_rows,
)


def test_alerts_stored_once_and_resolved_in_place(
    migrated_dsn: str, amqp_url: str, amqp_names: AmqpNames, start_consumer: ConsumerFactory
) -> None:
    with psycopg.connect(migrated_dsn) as conn:
        system_id = conn.execute(
            "INSERT INTO systems (instance, department) VALUES ('127.0.1.5:22', 'physics') RETURNING id"
        ).fetchone()[0]
    down, cpu = alert("127.0.1.5:22"), alert("127.0.1.6:22", name="OptiLabCPUSaturated")
    resolved = {**down, "status": "resolved", "endsAt": "2026-11-28T01:05:00.5Z"}
    # Alertmanager re-sends (repeat_interval) and a firing copy arrives after the resolve
    messages = [alert_message(a, "optilab-oncall", "http://127.0.0.1:9093") for a in (down, cpu, down, resolved, down)]
    publish(amqp_url, amqp_names, messages)
    consumer = start_consumer(migrated_dsn, amqp_url, amqp_names, workers=1)  # one worker: order is kept
    finish(consumer, amqp_url, amqp_names, migrated_dsn)

    stored = rows(
        migrated_dsn,
        "SELECT instance, alertname, status, ends_at IS NOT NULL, system_id, "
        "severity, department, alert_type, message, labels->>'job' FROM alerts "
        "ORDER BY instance",
    )
    assert stored == [
        (
            "127.0.1.5:22",
            "OptiLabHostDown",
            "resolved",
            True,
            system_id,
            "critical",
            "physics",
            "host_down",
            "Lab machine 127.0.1.5:22 is down",
            "node",
        ),
        (
            "127.0.1.6:22",
            "OptiLabCPUSaturated",
            "firing",
            False,
            None,
            "critical",
            "physics",
            "host_down",
            "Lab machine 127.0.1.6:22 is down",
            "node",
        ),
    ]
    starts = rows(migrated_dsn, "SELECT to_char(starts_at AT TIME ZONE 'UTC', 'HH24:MI:SS.US') FROM alerts")
    assert {s for (s,) in starts} == {"01:00:00.123456"}
    assert drain(amqp_url, amqp_names.dead_queue) == []


def test_health_and_discovery_events_upsert_systems(
    migrated_dsn: str, amqp_url: str, amqp_names: AmqpNames, start_consumer: ConsumerFactory
) -> None:
    host = {"instance": "127.0.1.7:22", "hostname": "pc-07", "ip": "127.0.1.7", "department": "physics"}
    to_degraded = event(
        "health", **host, **{"from": "healthy", "to": "degraded", "reason": "timeout", "at": "2026-11-28T01:00:00Z"}
    )
    to_offline = event(
        "health", **host, **{"from": "degraded", "to": "offline", "reason": "refused", "at": "2026-11-28T01:02:00Z"}
    )
    discovered = event(
        "discovery",
        instance="127.0.1.7:22",
        hostname="pc-07",
        department="physics",
        os_type="linux",
        os_version="Debian 12",
        at="2026-11-28T00:59:00Z",
    )
    # newest transition first, and everything twice: the newest still wins, nothing doubles
    publish(amqp_url, amqp_names, [to_offline, discovered, to_degraded, to_offline, discovered])
    finish(start_consumer(migrated_dsn, amqp_url, amqp_names, workers=1), amqp_url, amqp_names, migrated_dsn)

    assert rows(
        migrated_dsn,
        "SELECT instance, hostname, ip_address, department, os_type, os_version, health_state FROM systems",
    ) == [("127.0.1.7:22", "pc-07", "127.0.1.7", "physics", "linux", "Debian 12", "offline")]
    assert rows(
        migrated_dsn,
        "SELECT to_char(timestamp AT TIME ZONE 'UTC', 'HH24:MI'), status, "
        "health_state, reason FROM status_history ORDER BY timestamp",
    ) == [("01:00", "online", "degraded", "timeout"), ("01:02", "offline", "offline", "refused")]


def test_poison_messages_go_to_the_dead_letter_queue_with_the_reason(
    migrated_dsn: str, amqp_url: str, amqp_names: AmqpNames, start_consumer: ConsumerFactory
) -> None:
    good = alert_message(alert(), "r", "")
    poison = [
        ("alert.firing", b"{not json"),
        event("metrics", version=1),
        event("alert", alert={**alert(), "fingerprint": None}),
        event("health", instance="127.0.1.8:22", to="sleepy", at="2026-11-28T01:00:00Z"),
        event("discovery", instance="127.0.1.9:22", ip="x" * 60, at="2026-11-28T01:00:00Z"),  # varchar(45)
    ]
    publish(amqp_url, amqp_names, [poison[0], good, *poison[1:]])
    finish(start_consumer(migrated_dsn, amqp_url, amqp_names, workers=1), amqp_url, amqp_names, migrated_dsn)
    assert rows(migrated_dsn, "SELECT count(*) FROM alerts") == [(1,)]

    dead: list[tuple[str, Any, bytes]] = []
    wait_for(
        lambda: dead.extend(drain(amqp_url, amqp_names.dead_queue)) or len(dead) >= len(poison), what="dead letters"
    )
    reasons = {body: props.headers["x-optilab-error"] for _, props, body in dead}
    assert sorted(reasons) == sorted(body for _, body in poison)
    assert "not JSON" in reasons[b"{not json"]
    assert "unknown event type 'metrics'" in reasons[poison[1][1]]
    assert "alert.fingerprint" in reasons[poison[2][1]]
    assert "sleepy" in reasons[poison[3][1]]
    assert "database refused" in reasons[poison[4][1]]
    assert all(props.delivery_mode == 2 for _, props, _ in dead)
    assert rows(migrated_dsn, "SELECT count(*) FROM systems") == [(0,)]  # the refused upsert rolled back


def test_consumers_side_by_side_and_sigterm_loses_nothing(
    migrated_dsn: str, amqp_url: str, amqp_names: AmqpNames, start_consumer: ConsumerFactory
) -> None:
    """Two consumer processes share a stream; one is stopped mid-stream, the other takes the rest."""
    batches, per_batch = 30, 100
    total = batches * per_batch
    first = start_consumer(migrated_dsn, amqp_url, amqp_names, workers=2)
    second = start_consumer(migrated_dsn, amqp_url, amqp_names, workers=2)

    def stream() -> None:
        for b in range(batches):
            publish(
                amqp_url,
                amqp_names,
                [
                    alert_message(alert(f"127.0.4.{i % 250}:22", fingerprint=f"fp{b}-{i}"), "r", "")
                    for i in range(per_batch)
                ],
            )

    publisher = threading.Thread(target=stream)
    publisher.start()
    wait_for(lambda: rows(migrated_dsn, "SELECT count(*) FROM alerts")[0][0] >= total // 5, what="first rows")
    first.signal(signal.SIGTERM)
    assert first.process.wait(30) == 0, first.log()
    publisher.join(timeout=120)
    assert not publisher.is_alive()
    wait_rows(migrated_dsn, "SELECT count(*), count(DISTINCT fingerprint) FROM alerts", [(total, total)])
    assert consumers(amqp_url, amqp_names.queue) == 2  # the second one is still consuming
    second.signal(signal.SIGTERM)
    assert second.process.wait(30) == 0, second.log()
    stored_by = [
        int(line.split("stored ")[1].split(",")[0])
        for log in (first.log(), second.log())
        for line in log.splitlines()
        if "stopped (stored" in line
    ]
    assert len(stored_by) == 4, first.log() + second.log()
    assert sum(stored_by) == total
    assert sum(stored_by[:2]) < total and sum(stored_by[2:]) > 0  # stopped mid-stream, the other took over
    assert drain(amqp_url, amqp_names.dead_queue) == []


def test_the_exporters_events_are_stored(
    migrated_dsn: str, amqp_url: str, amqp_names: AmqpNames, start_consumer: ConsumerFactory
) -> None:
    """Contract between the two sides: bodies built by exporter/events.py go in as they are."""
    labels = HostLabels("pc-11", "127.0.1.11", "biology")
    bodies = [
        events.discovery_event("127.0.1.11:22", "pc-11", "127.0.1.11", "biology", "linux", None),
        events.health_event(
            Transition("127.0.1.11:22", "healthy", "offline", "refused", 3), labels, at="2026-11-28T01:00:00.000Z"
        ),
    ]
    publish(amqp_url, amqp_names, [(body["type"], json.dumps(body).encode()) for body in bodies])
    finish(start_consumer(migrated_dsn, amqp_url, amqp_names, workers=1), amqp_url, amqp_names, migrated_dsn)
    assert rows(migrated_dsn, "SELECT instance, hostname, department, os_type, health_state FROM systems") == [
        ("127.0.1.11:22", "pc-11", "biology", "linux", "offline")
    ]
    assert rows(migrated_dsn, "SELECT health_state, reason FROM status_history") == [("offline", "refused")]
    assert drain(amqp_url, amqp_names.dead_queue) == []
