"""Smaller faults of issue #11 item 8 (bridge side): duplicate samples resolve the same way in every
table (the first value wins), and a broker outage costs one log line when it starts and one when it
ends — in the bridge's webhook publisher and in the consumer — not hundreds of pika tracebacks.
(A NUL byte in one series: tests/remote_write_bridge/test_bridge_bad_series.py;
CORS ``Vary``: tests/api/test_api_safety.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from tests.fixtures.procs import Service, wait_for
from tests.fixtures.rabbitmq import AmqpNames, PrivateRabbitMQ
from tests.support.alerts import alert, payload
from tests.support.remote_write import (
    HOST,
    encode,
    post,
)
from tests.support.services import full_log, post_alerts, post_until_accepted, start_bridge, start_bridge_consumer


def rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def test_duplicates_first_value_wins_everywhere(migrated_dsn, bridge_factory) -> None:
    bridge = bridge_factory(migrated_dsn)
    t1, t2 = int(time.time() * 1000) - 60_000, int(time.time() * 1000) - 30_000
    # across requests: a second value for a stored timestamp changes nothing; a missing column fills
    first = encode(
        [
            ({"__name__": "system_cpu_usage", **HOST}, [(10.0, t1)]),
            ({"__name__": "node_load1", **HOST}, [(1.0, t1)]),
            ({"__name__": "system_status", **HOST}, [(1, t1)]),
        ]
    )
    second = encode(
        [
            ({"__name__": "system_cpu_usage", **HOST}, [(20.0, t1)]),
            ({"__name__": "system_ram_usage", **HOST}, [(30.0, t1)]),
            ({"__name__": "node_load1", **HOST}, [(2.0, t1)]),
            ({"__name__": "system_status", **HOST}, [(0, t1)]),
        ]
    )
    # inside one request: two series that map to the same row (a label OptiLab ignores, an empty one)
    third = encode(
        [
            ({"__name__": "system_cpu_usage", **HOST}, [(50.0, t2)]),
            ({"__name__": "system_cpu_usage", **HOST, "job": "other"}, [(60.0, t2)]),
            ({"__name__": "node_load1", **HOST}, [(5.0, t2)]),
            ({"__name__": "node_load1", **HOST, "job": ""}, [(6.0, t2)]),
            ({"__name__": "system_status", **HOST}, [(1, t2)]),
            ({"__name__": "system_status", **HOST, "job": "other"}, [(0, t2)]),
        ]
    )
    for body in (first, second, third):
        assert post(bridge.write_url, body)[0] == 204
    usage = rows(migrated_dsn, "SELECT cpu_usage, ram_usage FROM usage_metrics ORDER BY timestamp")
    samples = rows(migrated_dsn, "SELECT value FROM samples ORDER BY timestamp")
    status = rows(migrated_dsn, "SELECT status, extract(epoch FROM status_at) * 1000 FROM systems")
    assert (usage, samples, status) == ([(10.0, 30.0), (50.0, None)], [(1.0,), (5.0,)], [("online", t2)])
    assert rows(migrated_dsn, "SELECT status FROM status_history") == [("online",)]


def test_a_broker_outage_logs_one_line_when_it_starts_and_one_when_it_ends(
    tmp_path: Path, migrated_dsn: str, private_rabbitmq: PrivateRabbitMQ, services: Callable[..., Service]
) -> None:
    names, url = AmqpNames("optilab-quiet"), private_rabbitmq.url
    bridge = start_bridge(services, migrated_dsn, url, names)
    consumer = start_bridge_consumer(services, migrated_dsn, url, names, workers=2)
    assert post_alerts(bridge, payload(alert("127.0.8.1:22", fingerprint="a"))) == 200
    wait_for(lambda: rows(migrated_dsn, "SELECT count(*) FROM alerts") == [(1,)], what="the first alert")

    private_rabbitmq.stop()
    refused = 0
    deadline = time.monotonic() + 8  # Alertmanager retrying into an outage of ~10 s
    while time.monotonic() < deadline:
        refused += post_alerts(bridge, payload(alert("127.0.8.2:22", fingerprint="b"))) == 503
        time.sleep(0.5)
    private_rabbitmq.start()
    post_until_accepted(bridge, payload(alert("127.0.8.2:22", fingerprint="b")))
    wait_for(
        lambda: rows(migrated_dsn, "SELECT count(*) FROM alerts") == [(2,)],
        timeout=60,
        what="the alert sent after the outage",
    )
    wait_for(lambda: full_log(consumer).count("available again") == 2, timeout=30, what="both consumer workers back")

    bridge_log, consumer_log = (tmp_path / "bridge.log").read_text(), full_log(consumer)
    assert refused >= 5
    assert "Traceback" not in bridge_log + consumer_log
    publisher = [line for line in bridge_log.splitlines() if "publisher: broker" in line]
    assert len(publisher) == 2, publisher
    assert "broker unavailable" in publisher[0] and "available again" in publisher[1]
    workers = [line for line in consumer_log.splitlines() if "broker" in line]
    assert len(workers) == 4, workers
    for worker in ("worker-0", "worker-1"):
        for change in ("broker unavailable", "broker available again"):
            assert sum(f"{worker}: {change}" in line for line in workers) == 1, (worker, change, workers)
    # the whole outage: a handful of lines, one per refused webhook call plus the state changes
    assert len(bridge_log.splitlines()) < 20 + refused, bridge_log
