"""A real Prometheus scrapes a fixture target and remote-writes to the bridge (subprocess); what
lands in PostgreSQL must be exactly what Prometheus holds, also across a database outage."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from optilab.timescale.migrate import migrate
from tests.fixtures.procs import wait_for
from tests.support.remote_write import (
    HOST,
    encode,
    metric_value,
    post,
    prometheus_config,
)
from tests.support.stored import (
    assert_database_matches_prometheus,
    row_counts,
)

pytestmark = pytest.mark.slow


# Fixture order matters for teardown: Prometheus stops first (flushing into a live bridge), the
# database goes last.
def test_what_prometheus_sends_is_what_lands_in_the_tables(
    migrated_dsn, scrape_target, bridge_factory, prometheus_factory: Callable
) -> None:
    bridge = bridge_factory(migrated_dsn)
    prometheus = prometheus_factory(prometheus_config(scrape_target.address, bridge.write_url))
    wait_for(lambda: scrape_target.scrapes >= 6, timeout=30, what="six scrapes")
    compared = assert_database_matches_prometheus(prometheus.url, migrated_dsn, int(time.time() * 1000) - 2000)
    assert compared >= 3 * 3 * 5  # at least three scrapes × 3 hosts × (4 usage columns + node_load1)
    with psycopg.connect(migrated_dsn) as conn:
        systems = conn.execute(
            "SELECT instance, hostname, ip_address, department, status FROM systems ORDER BY instance"
        ).fetchall()
        assert conn.execute("SELECT count(*) FROM series WHERE metric = 'not_allowed_metric'").fetchone() == (0,)
    assert systems == [
        ("127.0.1.10:22", "pc-0", "127.0.1.10", "physics", "online"),
        ("127.0.1.11:22", "pc-1", "127.0.1.11", "maths", "online"),
        ("127.0.1.12:22", "pc-2", "127.0.1.12", "physics", "offline"),
    ]
    # a series that disappears gets a stale marker from Prometheus, which is counted, not stored
    scrape_target.removed.add("node_load1")
    wait_for(
        lambda: metric_value(bridge.metrics(), "optilab_bridge_samples_dropped_total", 'reason="stale_or_nan"') >= 3,
        timeout=30,
        what="stale markers",
    )
    with psycopg.connect(migrated_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM samples WHERE value = 'NaN'").fetchone() == (0,)


def test_database_outage_loses_and_doubles_nothing(
    private_postgres, scrape_target, bridge_factory, prometheus_factory: Callable
) -> None:
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
    wait_for(
        lambda: metric_value(bridge.metrics(), "optilab_bridge_requests_total", 'code="503"') >= 3,
        timeout=30,
        what="Prometheus retrying into the outage",
    )
    private_postgres.start()
    scrapes_at_restart = scrape_target.scrapes
    wait_for(lambda: scrape_target.scrapes >= scrapes_at_restart + 3, timeout=30, what="scrapes after the outage")

    compared = assert_database_matches_prometheus(prometheus.url, dsn, int(time.time() * 1000) - 2000)
    # every scrape up to the restart, outage included: 3 hosts × (4 usage columns + node_load1)
    assert compared >= 3 * 5 * scrapes_at_restart
    total, distinct, samples, distinct_samples = row_counts(dsn)
    assert (total, samples) == (distinct, distinct_samples)
