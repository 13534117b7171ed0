"""A real Prometheus scrapes a fixture target and remote-writes to the bridge (subprocess); what
lands in PostgreSQL must be exactly what Prometheus holds, also across a database outage."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from optilab.timescale.migrate import migrate
from tests.fixtures.procs import wait_for
from tests.fixtures.prometheus import query
from tests.support.remote_write import (
    HOST,
    bridge_factory,  # noqa: F401 - fixture
    encode,
    metric_value,
    post,
    prometheus_config,
    scrape_target,  # noqa: F401 - fixture
)

pytestmark = pytest.mark.slow

USAGE = {"system_cpu_usage": "cpu_usage", "system_ram_usage": "ram_usage", "system_disk_usage": "disk_usage",
         "optilab_logged_in_users": "logged_in_users"}


def prometheus_samples(url: str, metric: str, until_ms: int) -> dict[tuple[str, int], float]:
    """Every raw sample Prometheus holds for ``metric`` up to ``until_ms``, keyed by (instance, ms)."""
    result = {}
    for series in query(url, f"{metric}[10m]"):
        for ts, value in series["values"]:
            ms = round(float(ts) * 1000)
            if ms <= until_ms:
                result[(series["metric"]["instance"], ms)] = float(value)
    return result


def database_usage(dsn: str, column: str, until_ms: int) -> dict[tuple[str, int], float]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            f"SELECT s.instance, (extract(epoch FROM u.timestamp) * 1000)::int8, u.{column} "  # noqa: S608 - fixed names
            "FROM usage_metrics u JOIN systems s ON s.id = u.system_id "
            "WHERE u.timestamp <= TIMESTAMPTZ 'epoch' + %s * INTERVAL '1 millisecond' AND u." + column + " IS NOT NULL",
            (until_ms,)).fetchall()
    return {(instance, ms): float(value) for instance, ms, value in found}


def database_load1(dsn: str, until_ms: int) -> dict[tuple[str, int], float]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT s.labels->>'instance', (extract(epoch FROM x.timestamp) * 1000)::int8, x.value "
            "FROM samples x JOIN series s ON s.id = x.series_id WHERE s.metric = 'node_load1' "
            "AND x.timestamp <= TIMESTAMPTZ 'epoch' + %s * INTERVAL '1 millisecond'", (until_ms,)).fetchall()
    return {(instance, ms): value for instance, ms, value in found}


def assert_database_matches_prometheus(prom_url: str, dsn: str, until_ms: int) -> int:
    """Wait (bounded) until the database holds every sample Prometheus has up to ``until_ms``, then
    compare exactly; returns the number of samples compared."""
    def complete() -> bool:
        return all(prometheus_samples(prom_url, metric, until_ms).keys() <= database_usage(dsn, column, until_ms).keys()
                   for metric, column in USAGE.items())
    wait_for(complete, timeout=30, interval=0.5, what="the bridge to store everything Prometheus sent")
    compared = 0
    for metric, column in USAGE.items():
        expected = prometheus_samples(prom_url, metric, until_ms)
        assert database_usage(dsn, column, until_ms) == expected, metric
        compared += len(expected)
    expected_load = prometheus_samples(prom_url, "node_load1", until_ms)
    assert database_load1(dsn, until_ms) == expected_load
    return compared + len(expected_load)


def row_counts(dsn: str) -> tuple[int, int, int, int]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM usage_metrics), (SELECT count(DISTINCT (system_id, timestamp)) "
            "FROM usage_metrics), (SELECT count(*) FROM samples), "
            "(SELECT count(DISTINCT (series_id, timestamp)) FROM samples)").fetchone()


# Fixture order matters for teardown: Prometheus stops first (flushing into a live bridge), the
# database goes last.
def test_what_prometheus_sends_is_what_lands_in_the_tables(
        migrated_dsn, scrape_target, bridge_factory, prometheus_factory: Callable) -> None:  # noqa: F811
    bridge = bridge_factory(migrated_dsn)
    prometheus = prometheus_factory(prometheus_config(scrape_target.address, bridge.write_url))
    wait_for(lambda: scrape_target.scrapes >= 6, timeout=30, what="six scrapes")
    compared = assert_database_matches_prometheus(prometheus.url, migrated_dsn, int(time.time() * 1000) - 2000)
    assert compared >= 3 * 3 * 5  # at least three scrapes × 3 hosts × (4 usage columns + node_load1)
    with psycopg.connect(migrated_dsn) as conn:
        systems = conn.execute("SELECT instance, hostname, ip_address, department, status FROM systems "
                               "ORDER BY instance").fetchall()
        assert conn.execute("SELECT count(*) FROM series WHERE metric = 'not_allowed_metric'").fetchone() == (0,)
    assert systems == [("127.0.1.10:22", "pc-0", "127.0.1.10", "physics", "online"),
                       ("127.0.1.11:22", "pc-1", "127.0.1.11", "maths", "online"),
                       ("127.0.1.12:22", "pc-2", "127.0.1.12", "physics", "offline")]
    # a series that disappears gets a stale marker from Prometheus, which is counted, not stored
    scrape_target.removed.add("node_load1")
    wait_for(lambda: metric_value(bridge.metrics(), "optilab_bridge_samples_dropped_total",
                                  'reason="stale_or_nan"') >= 3, timeout=30, what="stale markers")
    with psycopg.connect(migrated_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM samples WHERE value = 'NaN'").fetchone() == (0,)


def test_database_outage_loses_and_doubles_nothing(
        private_postgres, scrape_target, bridge_factory, prometheus_factory: Callable) -> None:  # noqa: F811
    with psycopg.connect(private_postgres.dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE optilab")
    dsn = psycopg.conninfo.make_conninfo(private_postgres.dsn, dbname="optilab")
    assert migrate(dsn) == "postgresql"
    bridge = bridge_factory(dsn, {"remote_write": {"pool_timeout": 1}})
    prometheus = prometheus_factory(prometheus_config(scrape_target.address, bridge.write_url))
    wait_for(lambda: row_counts(dsn)[0] >= 6, timeout=30, what="rows before the outage")

    private_postgres.stop()
    code, _ = post(bridge.write_url, encode([({"__name__": "node_load1", **HOST}, [(1.0, int(time.time() * 1000))])]))
    assert code == 503
    scrapes_at_stop = scrape_target.scrapes
    wait_for(lambda: scrape_target.scrapes >= scrapes_at_stop + 4, timeout=30, what="scrapes during the outage")
    wait_for(lambda: metric_value(bridge.metrics(), "optilab_bridge_requests_total", 'code="503"') >= 3,
             timeout=30, what="Prometheus retrying into the outage")
    private_postgres.start()
    scrapes_at_restart = scrape_target.scrapes
    wait_for(lambda: scrape_target.scrapes >= scrapes_at_restart + 3, timeout=30, what="scrapes after the outage")

    compared = assert_database_matches_prometheus(prometheus.url, dsn, int(time.time() * 1000) - 2000)
    # every scrape up to the restart, outage included: 3 hosts × (4 usage columns + node_load1)
    assert compared >= 3 * 5 * scrapes_at_restart
    total, distinct, samples, distinct_samples = row_counts(dsn)
    assert (total, samples) == (distinct, distinct_samples)
