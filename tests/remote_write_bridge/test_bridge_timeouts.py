"""Writes with a bound (issue #11 item 7): a table lock makes bridge writes answer 503 in seconds
(Prometheus retries; nothing is lost) instead of hanging past its 30 s remote_timeout, /health names
a stuck writer, and the consumer's writes are bounded the same way."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from tests.fixtures.procs import wait_for
from tests.fixtures.rabbitmq import AmqpNames, drain
from tests.support.consumer import event, publish, rows
from tests.support.remote_write import HOST, encode, get, metric_value, now_ms, post, prometheus_config
from tests.support.stored import assert_database_matches_prometheus, row_counts


def body(value: float = 1.0) -> bytes:
    return encode(
        [
            ({"__name__": "node_load1", **HOST}, [(value, now_ms() - 1000)]),
            ({"__name__": "system_cpu_usage", **HOST}, [(value, now_ms() - 1000)]),
        ]
    )


def test_a_locked_table_gives_503_in_seconds_not_a_hang(migrated_dsn, bridge_factory) -> None:
    """With the default bounds (lock_timeout 5 s, statement_timeout 20 s) the answer comes back
    inside the client's 15 s — Prometheus waits 30 s — and the retry after the lock succeeds."""
    bridge = bridge_factory(migrated_dsn)
    assert post(bridge.write_url, body(1.0))[0] == 204  # ids and partitions cached
    with psycopg.connect(migrated_dsn) as locker:
        locker.execute("LOCK TABLE samples IN ACCESS EXCLUSIVE MODE")
        code, text = post(bridge.write_url, body(2.0))  # urllib's timeout is 15 s: a hang would raise
        locker.rollback()
    assert code == 503 and "55P03" in text, text
    failure = json.loads(get(f"{bridge.url}/health")[1])["writes"]["last_failure"]
    assert failure["reason"].startswith("55P03") and failure["age_seconds"] < 60
    assert post(bridge.write_url, body(2.0))[0] == 204
    assert rows(migrated_dsn, "SELECT count(*) FROM samples") == [(2,)]


def test_statement_timeout_bounds_a_slow_statement(migrated_dsn, bridge_factory) -> None:
    """A lock only on the rows the status update needs, with a long lock_timeout: the statement
    timeout still ends the write (57014 query_canceled), as a 503."""
    bridge = bridge_factory(migrated_dsn, {"remote_write": {"statement_timeout_s": 1, "lock_timeout_s": 30}})
    status = encode([({"__name__": "system_status", **HOST}, [(1, now_ms() - 2000)])])
    assert post(bridge.write_url, status)[0] == 204
    with psycopg.connect(migrated_dsn) as locker:
        locker.execute("SELECT * FROM systems FOR UPDATE")
        code, text = post(bridge.write_url, encode([({"__name__": "system_status", **HOST}, [(0, now_ms())])]))
        locker.rollback()
    assert code == 503 and "57014" in text, text


def test_health_reports_a_stuck_writer(migrated_dsn, bridge_factory) -> None:
    bridge = bridge_factory(migrated_dsn, {"remote_write": {"stuck_write_s": 1, "lock_timeout_s": 6}})
    assert post(bridge.write_url, body())[0] == 204
    code, text = get(f"{bridge.url}/health")
    assert code == 200 and json.loads(text)["writes"] == {"in_flight": 0, "oldest_seconds": 0.0, "last_failure": None}
    answers: list[int] = []
    with psycopg.connect(migrated_dsn) as locker:
        locker.execute("LOCK TABLE samples IN ACCESS EXCLUSIVE MODE")
        writer = threading.Thread(target=lambda: answers.append(post(bridge.write_url, body(3.0))[0]))
        writer.start()
        wait_for(
            lambda: json.loads(get(f"{bridge.url}/health")[1])["writes"]["oldest_seconds"] > 1.5,
            timeout=5,
            what="the writer to be stuck for 1.5 s",
        )
        code, text = get(f"{bridge.url}/health")
        locker.rollback()
    writer.join(20)
    health = json.loads(text)
    assert code == 503 and health["status"] == "degraded", health
    assert health["reason"].startswith("a write has been in flight for") and health["database"]["reachable"]
    assert answers == [204]  # the lock went away before lock_timeout: the write completed
    assert get(f"{bridge.url}/health")[0] == 200


@pytest.mark.slow
def test_prometheus_loses_nothing_across_a_table_lock(
    migrated_dsn, scrape_target, bridge_factory, prometheus_factory: Callable
) -> None:
    """A real Prometheus across an 8 s exclusive lock of usage_metrics (lock_timeout 1 s): the bridge
    answers 503 while it lasts, Prometheus retries, and the database ends up matching Prometheus."""
    bridge = bridge_factory(migrated_dsn, {"remote_write": {"lock_timeout_s": 1}})
    prometheus = prometheus_factory(prometheus_config(scrape_target.address, bridge.write_url))
    wait_for(lambda: row_counts(migrated_dsn)[0] >= 6, timeout=30, what="rows before the lock")
    with psycopg.connect(migrated_dsn) as locker:
        locker.execute("LOCK TABLE usage_metrics IN ACCESS EXCLUSIVE MODE")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.5)
        locker.rollback()
    assert metric_value(bridge.metrics(), "optilab_bridge_requests_total", 'code="503"') >= 2
    scrapes = scrape_target.scrapes
    wait_for(lambda: scrape_target.scrapes >= scrapes + 3, timeout=30, what="scrapes after the lock")
    compared = assert_database_matches_prometheus(prometheus.url, migrated_dsn, now_ms() - 2000)
    assert compared >= 3 * 5 * scrapes
    total, distinct, samples, distinct_samples = row_counts(migrated_dsn)
    assert (total, samples) == (distinct, distinct_samples)


def test_the_consumer_requeues_behind_a_lock_and_stores_after_it(
    migrated_dsn: str, amqp_url: str, amqp_names: AmqpNames, start_consumer
) -> None:
    consumer = start_consumer(migrated_dsn, amqp_url, amqp_names, workers=1)
    with psycopg.connect(migrated_dsn) as conn:
        settings = conn.execute(
            "SELECT setting FROM pg_settings WHERE name IN ('lock_timeout', 'statement_timeout') ORDER BY name"
        ).fetchall()
    assert settings == [("0",), ("0",)]  # the server's defaults: the bounds are the consumer's own
    with psycopg.connect(migrated_dsn) as locker:
        locker.execute("LOCK TABLE systems IN ACCESS EXCLUSIVE MODE")
        publish(amqp_url, amqp_names, [event("discovery", instance="127.0.1.9:22", at="2026-11-28T00:00:00Z")])
        wait_for(lambda: "lock timeout" in consumer.log(), timeout=20, what="the consumer's lock timeout")
        locker.rollback()
    wait_for(
        lambda: rows(migrated_dsn, "SELECT count(*) FROM systems WHERE instance = '127.0.1.9:22'") == [(1,)],
        timeout=30,
        what="the event stored after the lock",
    )
    assert drain(amqp_url, amqp_names.dead_queue) == []
