"""The API's own Prometheus metrics, in a registry per app so several apps (tests) never collide.

Request latency is labelled by route template (``/systems/<int:system_id>``), not by raw path, so a
client walking ids cannot blow up the series count; unmatched paths share ``endpoint="unmatched"``.
Pool gauges come from a custom collector that reads the pool's stats at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from optilab.toolkit import selfmetrics

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PoolCollector(Collector):
    """Connection-pool gauges, fresh families per scrape."""

    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._stats()
        for key, name, help_text in (
            ("pool_size", "optilab_api_db_pool_connections", "Connections the pool holds (idle + in use)."),
            ("pool_available", "optilab_api_db_pool_idle_connections", "Idle connections in the pool."),
            ("requests_waiting", "optilab_api_db_pool_waiting_requests", "Requests waiting for a connection."),
        ):
            yield GaugeMetricFamily(name, help_text, value=stats.get(key, 0))


def install(app: Flask, pool_stats: Callable[[], dict[str, int]]) -> CollectorRegistry:
    """Time every request (including errors) and return the registry that /metrics serves."""
    registry = CollectorRegistry(auto_describe=True)
    selfmetrics.register(registry, "api")  # optilab_build_info, process_*
    latency = Histogram(
        "optilab_api_request_duration_seconds",
        "Time to answer an API request, by route template, method and status code.",
        ["endpoint", "method", "code"],
        buckets=BUCKETS,
        registry=registry,
    )
    registry.register(PoolCollector(pool_stats))

    @app.before_request
    def start_timer() -> None:
        g.optilab_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.get("optilab_started")
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            latency.labels(endpoint, request.method, str(response.status_code)).observe(time.perf_counter() - started)
        return response

    return registry
