"""Health state and OS type reach the database through remote write alone (no RabbitMQ section):
a real bridge subprocess, the machine's PostgreSQL, requests shaped like the exporter's series."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.support.remote_write import (
    HOST,
    encode,
    metric_value,
    post,
)

STATES = ("healthy", "degraded", "offline", "dead")


def health(state: str, ms: int) -> list:
    """The exporter's optilab_host_health_state: one series per state, 1 for the current one."""
    return [
        (
            {
                "__name__": "optilab_host_health_state",
                "instance": HOST["instance"],
                "department": HOST["department"],
                "state": s,
            },
            [(1.0 if s == state else 0.0, ms)],
        )
        for s in STATES
    ]


def os_info(name: str, version: str, ms: int) -> list:
    return [
        (
            {
                "__name__": "node_os_info",
                "instance": HOST["instance"],
                "name": name,
                "version_id": version,
                "pretty_name": f"{name} {version}",
                "id": "debian",
            },
            [(1.0, ms)],
        )
    ]


def status(ms: int, value: float = 1.0) -> list:
    return [({"__name__": "system_status", **HOST}, [(value, ms)])]


def rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def bridge(migrated_dsn, bridge_factory):
    return bridge_factory(migrated_dsn)


def test_health_state_and_os_type_come_from_remote_write(bridge, migrated_dsn) -> None:
    t = int(time.time() * 1000) - 60_000
    assert (
        post(bridge.write_url, encode(status(t) + health("healthy", t) + os_info("Debian GNU/Linux", "12", t)))[0]
        == 204
    )
    # the systems row is created by this first request; its facts follow with the next scrape
    for step, state in enumerate(("healthy", "healthy", "degraded", "degraded", "offline"), start=1):
        ms = t + step * 10_000
        body = (
            status(ms, 0.0 if state != "healthy" else 1.0) + health(state, ms) + os_info("Debian GNU/Linux", "12", ms)
        )
        assert post(bridge.write_url, encode(body))[0] == 204
        assert post(bridge.write_url, encode(body))[0] == 204  # Prometheus retrying: nothing doubles
    assert rows(migrated_dsn, "SELECT health_state, os_type, os_version FROM systems") == [
        ("offline", "Debian GNU/Linux", "12")
    ]
    history = rows(
        migrated_dsn,
        "SELECT health_state, reason FROM status_history WHERE health_state IS NOT NULL ORDER BY timestamp",
    )
    assert history == [("healthy", "remote_write"), ("degraded", "remote_write"), ("offline", "remote_write")]
    # an OS upgrade is picked up; a late sample of an old state does not win
    late = t + 20_000
    assert (
        post(bridge.write_url, encode(health("degraded", late) + os_info("Debian GNU/Linux", "13", t + 70_000)))[0]
        == 204
    )
    assert rows(migrated_dsn, "SELECT health_state, os_version FROM systems") == [("offline", "13")]
    assert rows(migrated_dsn, "SELECT count(*) FROM status_history WHERE health_state IS NOT NULL") == [(3,)]
    metrics = bridge.metrics()
    assert metric_value(metrics, "optilab_bridge_samples_dropped_total", 'reason="not_allowed"') == 0
