"""Alerts end to end with real parts, and the event path under faults.

Pipeline: a tiny probe target (switchable down) ← real Prometheus (job="node", 1 s scrapes and
evaluations, the real rules with `for:` shortened) → real Alertmanager (deploy/alertmanager's
config, webhook rewritten to the test's bridge, 1 s grouping) → `optilab-bridge` (waitress) →
the machine's RabbitMQ (unique names) → `optilab-bridge consume` → PostgreSQL.
Faults: a private RabbitMQ restarted mid-stream, a private PostgreSQL stopped while consuming,
duplicates and a poison message — nothing lost, nothing doubled, the poison in the dead queue.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from optilab.toolkit.contract import alert_message
from tests.fixtures.postgres import PrivatePostgres
from tests.fixtures.procs import Service, free_port, http_ok, wait_for
from tests.fixtures.prometheus import Peer, query
from tests.fixtures.rabbitmq import AmqpNames, PrivateRabbitMQ, drain
from tests.support.alerts import alert, payload
from tests.support.consumer import event, publish, queued, rows
from tests.support.paths import REPO
from tests.support.services import (
    full_log,
    post_alerts,
    post_until_accepted,
    start_bridge,
    start_bridge_consumer,
)

RULES = REPO / "alert_rules" / "optilab.yml"
AM_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"

pytestmark = pytest.mark.slow


class ProbeTarget:
    """Serves /probe?target=HOST:PORT like the exporter would, with hosts switchable up and down."""

    def __init__(self, hosts: dict[str, str]) -> None:
        self.departments = hosts
        self.down: set[str] = set()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("target", [""])[0]
                body = target.metrics(host).encode()
                self.send_response(200 if host in target.departments else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass  # quiet test output

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def metrics(self, host: str) -> str:
        up = 0 if host in self.down else 1
        labels = (
            f'hostname="pc-{host.split(".")[-1].split(":")[0]}",ip="{host.split(":")[0]}",'
            f'department="{self.departments.get(host, "")}"'
        )
        lines = [f"system_status{{{labels}}} {up}", f"optilab_probe_success {up}"]
        if up:
            lines += [f"system_cpu_usage{{{labels}}} 12", f"system_disk_usage{{{labels}}} 40"]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def short_rules(path: Path, duration: str = "2s") -> Path:
    """The real rules with every `for:` shortened, so simulated minutes become seconds."""
    text, count = re.subn(r"(?m)^(\s+for:) \S+$", rf"\1 {duration}", RULES.read_text())
    assert count >= 9
    path.write_text(text)
    return path


def alertmanager_config(webhook: str) -> dict[str, Any]:
    """deploy/alertmanager's config with the test's webhook and 1 s grouping everywhere."""
    config = yaml.safe_load(AM_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = webhook

    def shorten(route: dict[str, Any]) -> None:
        route.update({key: "1s" for key in ("group_wait", "group_interval") if key in route})
        for child in route.get("routes", []):
            shorten(child)

    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    shorten(config["route"])
    return config


def prometheus_config(tmp_path: Path, am: Peer, discovery: dict[str, Any], probe_address: str) -> dict:
    """deploy/prometheus's node job (probe relabelling, honor_labels) at 1 s, with the short rules."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(short_rules(tmp_path / "rules.yml"))],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.url.split("//")[1]]}]}]},
        "scrape_configs": [
            {
                "job_name": "node",
                "metrics_path": "/probe",
                "honor_labels": True,
                **discovery,
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": probe_address},
                ],
            }
        ],
    }


def test_host_down_alert_reaches_the_database_and_resolves(
    tmp_path: Path,
    migrated_dsn: str,
    amqp_url: str,
    amqp_names: AmqpNames,
    prometheus_factory: Callable[..., Peer],
    alertmanager_factory: Callable[..., Peer],
    services: Callable[..., Service],
) -> None:
    target = ProbeTarget({"127.0.1.5:22": "physics", "127.0.1.6:22": "chemistry"})
    try:
        bridge = start_bridge(services, migrated_dsn, amqp_url, amqp_names)
        start_bridge_consumer(services, migrated_dsn, amqp_url, amqp_names)
        am = alertmanager_factory(alertmanager_config(bridge + "/api/v1/alerts"))
        prometheus = prometheus_factory(
            prometheus_config(
                tmp_path,
                am,
                {
                    "static_configs": [
                        {"targets": ["127.0.1.5:22"], "labels": {"department": "physics"}},
                        {"targets": ["127.0.1.6:22"], "labels": {"department": "chemistry"}},
                    ],
                },
                target.address,
            )
        )
        wait_for(lambda: len(query(prometheus.url, "system_status == 1")) == 2, what="both hosts scraped up")

        target.down.add("127.0.1.5:22")
        firing = "SELECT alertname, status, instance, department, severity FROM alerts"
        wait_for(
            lambda: (
                rows(migrated_dsn, firing) == [("OptiLabHostDown", "firing", "127.0.1.5:22", "physics", "critical")]
            ),
            timeout=40,
            what="OptiLabHostDown firing in the database",
        )

        target.down.clear()
        wait_for(
            lambda: rows(migrated_dsn, "SELECT status FROM alerts") == [("resolved",)],
            timeout=40,
            what="the alert resolved in the database",
        )
        (row,) = rows(
            migrated_dsn,
            "SELECT fingerprint, ends_at > starts_at, labels->>'job', annotations->>'runbook_url', message FROM alerts",
        )
        runbook = "https://optilab.example/docs/alerts.md#optilabhostdown"
        assert row[1:] == (True, "node", runbook, "Lab machine 127.0.1.5:22 is down")
        assert row[0]  # Alertmanager's fingerprint is the dedup key
        # the up host never alerted, and nothing was dead-lettered
        assert drain(amqp_url, amqp_names.dead_queue) == []
    finally:
        target.close()


def test_broker_restart_mid_stream_duplicates_and_poison(
    migrated_dsn: str, private_rabbitmq: PrivateRabbitMQ, services: Callable[..., Service]
) -> None:
    names, url = AmqpNames("optilab-e2e"), private_rabbitmq.url
    bridge = start_bridge(services, migrated_dsn, url, names)
    batch = [[alert(f"127.0.5.{i}:22", fingerprint=f"fp{b}-{i}") for i in range(50)] for b in range(30)]
    for alerts in batch[:20]:
        assert post_alerts(bridge, payload(*alerts)) == 200
    publish(url, names, [("alert.firing", b"\x00 poison")])
    consumer = start_bridge_consumer(services, migrated_dsn, url, names)
    wait_for(lambda: rows(migrated_dsn, "SELECT count(*) FROM alerts")[0][0] >= 50, what="first rows")

    private_rabbitmq.stop()  # mid-stream: unacked deliveries return to the durable queue
    assert post_alerts(bridge, payload(*batch[20])) == 503  # not confirmed, so Alertmanager would retry
    wait_for(lambda: "broker unavailable" in full_log(consumer), what="consumer notices the outage")
    private_rabbitmq.start()

    for alerts in batch[20:]:
        post_until_accepted(bridge, payload(*alerts))
    assert post_alerts(bridge, payload(*batch[0])) == 200  # Alertmanager re-sends a group it already sent
    total = 30 * 50
    wait_for(
        lambda: (
            rows(migrated_dsn, "SELECT count(*), count(DISTINCT (fingerprint, starts_at)) FROM alerts")
            == [(total, total)]
        ),
        timeout=60,
        what="every alert",
    )
    wait_for(lambda: queued(url, names) == 0, what="queue drained")
    dead = drain(url, names.dead_queue)
    assert [(body, props.headers["x-optilab-error"][:16]) for _, props, body in dead] == [
        (b"\x00 poison", "body is not JSON")
    ]
    assert rows(migrated_dsn, "SELECT count(*) FROM alerts") == [(total,)]


def test_database_down_while_consuming_loses_nothing(
    amqp_url: str, amqp_names: AmqpNames, private_postgres: PrivatePostgres, services: Callable[..., Service]
) -> None:
    from optilab.timescale.migrate import migrate

    dsn = private_postgres.dsn
    migrate(dsn)
    host = {"hostname": "pc", "department": "physics"}
    first = [
        event(
            "health",
            instance=f"127.0.6.{i % 200}:22",
            **host,
            to="degraded",
            reason="timeout",
            at=f"2026-11-28T01:{i // 60:02d}:{i % 60:02d}Z",
        )
        for i in range(1200)
    ]
    publish(amqp_url, amqp_names, first)
    consumer = start_bridge_consumer(services, dsn, amqp_url, amqp_names)
    wait_for(lambda: rows(dsn, "SELECT count(*) FROM status_history")[0][0] >= 100, what="first rows")

    private_postgres.stop()
    second = [alert_message(alert(f"127.0.7.{i}:22"), "r", "") for i in range(100)]
    publish(amqp_url, amqp_names, second)
    wait_for(lambda: "database unavailable" in full_log(consumer), what="consumer notices the outage")
    assert queued(amqp_url, amqp_names) > 0  # waiting in the queue, neither lost nor dead-lettered
    time.sleep(1)  # a few backoff rounds against the dead database
    private_postgres.start()

    wait_for(lambda: rows(dsn, "SELECT count(*) FROM alerts") == [(100,)], timeout=60, what="alerts")
    wait_for(
        lambda: rows(dsn, "SELECT count(*) FROM status_history") == [(1200,)], timeout=60, what="every health event"
    )
    assert rows(dsn, "SELECT count(DISTINCT (system_id, timestamp)) FROM status_history") == [(1200,)]
    assert rows(dsn, "SELECT count(*) FROM systems") == [(200,)]  # alerts never invent systems
    assert drain(amqp_url, amqp_names.dead_queue) == []
    with psycopg.connect(dsn) as conn:  # the outage is visible in the log, and backed off
        assert conn.execute("SELECT 1").fetchone() == (1,)
    retries = full_log(consumer).count("database unavailable")
    assert 1 <= retries < 200


def test_real_exporter_lab_host_down_alert_and_health_events(
    tmp_path: Path,
    migrated_dsn: str,
    amqp_url: str,
    amqp_names: AmqpNames,
    prometheus_factory: Callable[..., Peer],
    alertmanager_factory: Callable[..., Peer],
    services: Callable[..., Service],
) -> None:
    """The same path from the real exporter probing a simulated lab over SSH; its health
    transitions travel the same exchange into systems/status_history."""
    from optilab.labsim.lab import Lab

    lab = Lab.start(tmp_path / "lab", hosts=2, departments=1, port=free_port())
    try:
        bridge = start_bridge(services, migrated_dsn, amqp_url, amqp_names)
        start_bridge_consumer(services, migrated_dsn, amqp_url, amqp_names)  # declares the queue first
        inventory = yaml.safe_load(lab.inventory.read_text())
        inventory["health"] = {"degraded_interval": "1s", "offline_interval": "1s", "dead_interval": "2s"}
        inventory["rabbitmq"] = {"url": amqp_url, "exchange": amqp_names.exchange}
        (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
        exporter = f"127.0.0.1:{free_port()}"
        services(
            "exporter",
            [
                str(Path(sys.executable).parent / "optilab-exporter"),
                "--config",
                str(tmp_path / "inventory.yml"),
                "--listen",
                exporter,
            ],
            {},
            lambda: http_ok(f"http://{exporter}/sd"),
        )
        am = alertmanager_factory(alertmanager_config(bridge + "/api/v1/alerts"))
        prometheus = prometheus_factory(
            prometheus_config(
                tmp_path,
                am,
                {"http_sd_configs": [{"url": f"http://{exporter}/sd", "refresh_interval": "1s"}]},
                exporter,
            )
        )
        wait_for(
            lambda: len(query(prometheus.url, "system_status == 1")) == 2,
            timeout=30,
            what="both lab machines probed up",
        )

        down = lab.targets()[0]
        lab.set_fault(lab.hosts[0]["ip"], "refuse")
        wait_for(
            lambda: (
                rows(migrated_dsn, "SELECT alertname, status, instance FROM alerts")
                == [("OptiLabHostDown", "firing", down)]
            ),
            timeout=40,
            what="OptiLabHostDown from the real exporter",
        )
        lab.set_fault(lab.hosts[0]["ip"], "none")
        wait_for(
            lambda: (
                rows(migrated_dsn, "SELECT status FROM alerts WHERE alertname = 'OptiLabHostDown'") == [("resolved",)]
            ),
            timeout=40,
            what="resolved after the machine came back",
        )

        wait_for(
            lambda: (
                rows(migrated_dsn, "SELECT health_state FROM systems WHERE instance = %s", (down,)) == [("healthy",)]
            ),
            what="health back to healthy",
        )
        states = [
            state
            for (state,) in rows(
                migrated_dsn,
                "SELECT h.health_state FROM status_history h JOIN systems s ON s.id = h.system_id "
                "WHERE s.instance = %s ORDER BY h.timestamp",
                (down,),
            )
        ]
        # degraded after the first refused probe; offline only if 3 probes failed before recovery
        assert states[0] == "degraded" and states[-1] == "healthy" and len(states) >= 2
        assert drain(amqp_url, amqp_names.dead_queue) == []
    finally:
        lab.stop()
