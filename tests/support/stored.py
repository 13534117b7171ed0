"""What a real Prometheus holds against what the bridge stored: every raw sample compared exactly, for
the remote-write tests (through Prometheus, across outages, under table locks)."""

from __future__ import annotations

import psycopg

from tests.fixtures.procs import wait_for
from tests.fixtures.prometheus import query

USAGE = {
    "system_cpu_usage": "cpu_usage",
    "system_ram_usage": "ram_usage",
    "system_disk_usage": "disk_usage",
    "optilab_logged_in_users": "logged_in_users",
}


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
            (until_ms,),
        ).fetchall()
    return {(instance, ms): float(value) for instance, ms, value in found}


def database_load1(dsn: str, until_ms: int) -> dict[tuple[str, int], float]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT s.labels->>'instance', (extract(epoch FROM x.timestamp) * 1000)::int8, x.value "
            "FROM samples x JOIN series s ON s.id = x.series_id WHERE s.metric = 'node_load1' "
            "AND x.timestamp <= TIMESTAMPTZ 'epoch' + %s * INTERVAL '1 millisecond'",
            (until_ms,),
        ).fetchall()
    return {(instance, ms): value for instance, ms, value in found}


def assert_database_matches_prometheus(prom_url: str, dsn: str, until_ms: int) -> int:
    """Wait (bounded) until the database holds every sample Prometheus has up to ``until_ms``, then
    compare exactly; returns the number of samples compared."""

    def complete() -> bool:
        return all(
            prometheus_samples(prom_url, metric, until_ms).keys() <= database_usage(dsn, column, until_ms).keys()
            for metric, column in USAGE.items()
        )

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
            "(SELECT count(DISTINCT (series_id, timestamp)) FROM samples)"
        ).fetchone()
