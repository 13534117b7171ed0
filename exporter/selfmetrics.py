"""The exporter's own ``optilab_exporter_*`` families, built fresh from live counters at each scrape.

The pool, the health book and the event publisher keep plain counters (no metrics library in their
way, easy to assert on); this module turns them into families in client_python's custom-collector
style. Request-side metrics (scrape durations, probe results) live with the HTTP app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from optilab.toolkit.contract import PROBE_REASONS

DROP_REASONS = ("full", "unroutable", "nack", "shutdown")


def _counter(
    name: str, help_text: str, label: str, values: Mapping[str, float], always: Iterable[str] = ()
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=[label])
    for key in sorted({*always, *values}):
        family.add_metric([key], values.get(key, 0))
    return family


def runtime_families(runtime: Any) -> list[Metric]:
    """Families of a running ``exporter.runtime.Runtime`` (duck-typed: that module imports this one)."""
    pool, health, events = runtime.pool, runtime.health, runtime.events
    targets = list(runtime.config.inventory.hosts)
    families: list[Metric] = [
        _counter(
            "optilab_exporter_ssh_dials",
            "SSH connection attempts by result (success or reason).",
            "result",
            pool.stats.dials,
            ("success", *PROBE_REASONS),
        ),
        _counter(
            "optilab_exporter_ssh_errors",
            "SSH failures (dial or exec) by reason.",
            "reason",
            pool.stats.errors,
            PROBE_REASONS,
        ),
        _counter(
            "optilab_exporter_ssh_connections_closed",
            "Pooled SSH connections closed, by cause.",
            "cause",
            pool.stats.closed,
            ("idle", "age", "execs", "broken", "retired", "evicted"),
        ),
        CounterMetricFamily(
            "optilab_exporter_ssh_execs", "Commands run over pooled connections.", value=pool.stats.execs
        ),
        _counter(
            "optilab_exporter_ssh_shell_events",
            "Long-lived shell sessions: started, refused (fell back "
            "to exec), died, reset (answer cap), busy (a concurrent scrape answered by exec).",
            "event",
            pool.stats.shells,
            ("started", "refused", "died", "reset", "busy"),
        ),
        CounterMetricFamily(
            "optilab_exporter_ssh_answer_cap_hits",
            "Answers cut at ssh.session.max_answer_bytes.",
            value=pool.stats.answer_cap_hits,
        ),
        GaugeMetricFamily(
            "optilab_exporter_ssh_pooled_connections", "Open pooled SSH connections.", value=pool.open_connections()
        ),
        GaugeMetricFamily("optilab_exporter_targets", "Targets the inventory allows.", value=len(targets)),
    ]
    hosts = GaugeMetricFamily("optilab_exporter_hosts", "Inventory hosts per health state.", labels=["state"])
    for state, count in health.counts(targets).items():
        hosts.add_metric([state], count)
    transitions = CounterMetricFamily(
        "optilab_exporter_health_transitions", "Health state changes of hosts.", labels=["from", "to"]
    )
    for (before, after), count in sorted(health.transitions.items()):
        transitions.add_metric([before, after], count)
    reloads = _counter("optilab_exporter_config_reloads", "Config file reloads by result.", "result", runtime.reloads)
    last_reload = GaugeMetricFamily(
        "optilab_exporter_config_last_reload_successful",
        "1 when the last config reload was applied, 0 when it was refused (the running config stays).",
        value=1 if runtime.last_reload_ok else 0,
    )
    families += [hosts, transitions, reloads, last_reload]
    families += _memo_families(runtime.prober)
    families += pool.jumps.families()  # bastions' health and connections (exporter/jump.py)
    families += _event_families(events)
    return families


def _memo_families(prober: Any) -> list[Metric]:
    """Bounds of exporter/probe.py's per-host state that bit (issue #12 item 7), and its size."""
    cache = prober.collect_cache
    cap = CounterMetricFamily(
        "optilab_exporter_series_cap_hits",
        "Probes whose series were cut at the per-host series cap.",
        value=prober.series_cap_hits,
    )
    evictions = CounterMetricFamily(
        "optilab_exporter_cache_evictions",
        "Per-host memo entries dropped at a bound: "
        "collect/hosts (least recent host), collect/key_sets (distinct sets of source "
        "paths), collect/series (result too large to keep).",
        labels=["cache", "bound"],
    )
    for bound, count in sorted(cache.evictions.items()):
        evictions.add_metric(["collect", bound], count)
    sizes = GaugeMetricFamily("optilab_exporter_cache_hosts", "Hosts held by each per-host memo.", labels=["cache"])
    sizes.add_metric(["collect"], len(cache))
    served = CounterMetricFamily(
        "optilab_exporter_collector_results",
        "Collector results per probe: served from the collector cache (sources unchanged) or collected.",
        labels=["result"],
    )
    served.add_metric(["cached"], cache.hits)
    served.add_metric(["collected"], cache.misses)
    return [cap, evictions, sizes, served]


def _event_families(events: Any) -> list[Metric]:
    published = events.published if events is not None else 0
    dropped = events.dropped if events is not None else {}
    return [
        CounterMetricFamily("optilab_exporter_events_published", "Events confirmed by RabbitMQ.", value=published),
        _counter(
            "optilab_exporter_events_dropped",
            "Events lost, by reason (full = buffer overflow while the broker was away).",
            "reason",
            dropped,
            DROP_REASONS,
        ),
        GaugeMetricFamily(
            "optilab_exporter_events_queued",
            "Events waiting for the broker.",
            value=events.pending() if events is not None else 0,
        ),
        GaugeMetricFamily(
            "optilab_exporter_events_connected",
            "1 when the event publisher is connected.",
            value=1 if events is not None and events.connected else 0,
        ),
    ]
