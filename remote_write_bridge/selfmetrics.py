"""The bridge's own metrics, served at ``GET /metrics`` for Prometheus to scrape.

A registry per app (not the global one) so several apps in one test process do not collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from optilab.toolkit import selfmetrics

DROP_REASONS = (
    "stale_or_nan",
    "not_allowed",
    "out_of_window",
    "bad_value",
    "label_limit",
    "invalid_label",
    "db_unavailable",
    "unstorable",
)


class BridgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        selfmetrics.register(self.registry, "bridge")  # optilab_build_info, process_*
        self.requests = Counter(
            "optilab_bridge_requests_total",
            "Remote-write requests by HTTP status code.",
            ["code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "optilab_bridge_request_duration_seconds",
            "Time to decode and store one remote-write request.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.received = Counter(
            "optilab_bridge_samples_received_total", "Samples in accepted and refused requests.", registry=self.registry
        )
        self.stored = Counter(
            "optilab_bridge_samples_stored_total",
            "Samples written to the database (including idempotent duplicates).",
            registry=self.registry,
        )
        self.dropped = Counter(
            "optilab_bridge_samples_dropped_total",
            "Samples of decoded requests not stored, by reason (stale_or_nan, "
            "not_allowed, out_of_window, bad_value, label_limit, invalid_label, "
            "db_unavailable, unstorable).",
            ["reason"],
            registry=self.registry,
        )
        self.shed = Counter(
            "optilab_bridge_requests_shed_total",
            "Requests answered 503 because the in-flight byte budget stayed spent.",
            registry=self.registry,
        )
        self.newest_sample = Gauge(
            "optilab_bridge_newest_sample_timestamp_seconds",
            "Timestamp of the newest sample stored.",
            registry=self.registry,
        )
        self.maintenance_runs = Counter(
            "optilab_bridge_maintenance_runs_total",
            "Plain-PostgreSQL maintenance runs by result.",
            ["result"],
            registry=self.registry,
        )
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
