"""Metric families of one probe: node_exporter's, the lab gauges, the probe's own status, and rendering.

Custom-collector style: every call builds fresh families from its arguments and keeps no state, so
the runtime (``exporter/probe.py``) owns the only state there is — the previous snapshot of each
host, from which CPU percent is computed, and the health state. Names are fixed by
docs/interfaces.md; node_exporter's families live in ``metrics_node``. Every builder takes ``extra``,
labels that all samples of the probe carry (``instance`` and ``department`` in a fan-out).
"""

from __future__ import annotations

import copy

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from exporter.command import SECTIONS
from exporter.metrics_node import NO_EXTRA, Extra, collector_success_families, gauge, node_families
from exporter.parsers import HostSnapshot
from exporter.parsers_fs import Filesystem
from exporter.parsers_proc import Meminfo, Stat
from exporter.targets import HostLabels

HEALTH_STATES = ("healthy", "degraded", "offline", "dead")


def cpu_usage_percent(current: Stat, previous: Stat) -> float | None:
    """Busy percent of all CPUs between two reads of /proc/stat: 100 × (Δtotal − Δidle − Δiowait) / Δtotal.

    ``None`` when a counter went backwards (the host rebooted in between, the deltas mean nothing) or
    no time passed.
    """
    now, before = current.total.modes(), previous.total.modes()
    deltas = {mode: now[mode] - before[mode] for mode in now}
    if any(delta < 0 for delta in deltas.values()):
        return None
    elapsed = sum(deltas.values())
    if elapsed <= 0:
        return None
    return 100.0 * (elapsed - deltas["idle"] - deltas["iowait"]) / elapsed


def ram_usage_percent(meminfo: Meminfo) -> float | None:
    """Used percent (MemTotal − MemAvailable) / MemTotal.

    Kernels before 3.14 have no MemAvailable; there the classic estimate MemFree + Buffers + Cached
    (what ``free`` showed as "-/+ buffers/cache") stands in for it.
    """
    fields = meminfo.bytes
    total = fields["MemTotal"]
    if total <= 0:
        return None
    available = fields.get("MemAvailable")
    if available is None:
        available = sum(fields.get(name, 0) for name in ("MemFree", "Buffers", "Cached"))
    return 100.0 * (total - available) / total


def disk_usage_percent(filesystems: tuple[Filesystem, ...]) -> float | None:
    """Used percent of ``/`` as df computes it: used / (used + available), root's reserve counts as used."""
    for fs in filesystems:
        if (
            fs.mountpoint == "/"
            and fs.size_bytes is not None
            and fs.free_bytes is not None
            and fs.avail_bytes is not None
        ):
            used = fs.size_bytes - fs.free_bytes
            if used + fs.avail_bytes > 0:
                return 100.0 * used / (used + fs.avail_bytes)
    return None


def _lab_gauge(name: str, help_text: str, labels: dict[str, str], value: float | None) -> list[Metric]:
    return [] if value is None else [gauge(name, help_text, value, labels)]


def lab_families(
    snapshot: HostSnapshot, previous: HostSnapshot | None, host: HostLabels, extra: Extra = NO_EXTRA
) -> list[Metric]:
    """The design document's lab gauges, each left out when its inputs are missing."""
    cpu = None
    if snapshot.stat is not None and previous is not None and previous.stat is not None:
        cpu = cpu_usage_percent(snapshot.stat, previous.stat)
    ram = ram_usage_percent(snapshot.meminfo) if snapshot.meminfo is not None else None
    disk = disk_usage_percent(snapshot.filesystems) if snapshot.filesystems is not None else None
    users = len(snapshot.who) if snapshot.who is not None else None
    labels = host.with_extra(extra)
    return [
        *_lab_gauge(
            "system_cpu_usage",
            "Percent of CPU time busy (not idle or iowait) across all CPUs "
            "since this host's previous scrape.",
            labels,
            cpu,
        ),
        *_lab_gauge(
            "system_ram_usage", "Percent of memory in use: (MemTotal - MemAvailable) / MemTotal.", labels, ram
        ),
        *_lab_gauge(
            "system_disk_usage",
            "Percent used of the root filesystem, as df computes it: used / (used + available).",
            labels,
            disk,
        ),
        *_lab_gauge(
            "optilab_logged_in_users", "Login sessions listed by who (lab occupancy).", labels, users
        ),
    ]


def snapshot_families(
    snapshot: HostSnapshot,
    previous: HostSnapshot | None,
    labels: HostLabels,
    section_errors: dict[str, str],
    extra: Extra = NO_EXTRA,
) -> list[Metric]:
    """Everything a successful probe exposes: node_exporter families, per-section success, lab gauges."""
    sections = [name for name, _ in SECTIONS]
    return [
        *node_families(snapshot, extra),
        *collector_success_families(section_errors, sections, extra),
        *lab_families(snapshot, previous, labels, extra),
    ]


def probe_families(
    labels: HostLabels,
    success: bool,
    duration_seconds: float,
    health_state: str,
    error_reason: str | None,
    extra: Extra = NO_EXTRA,
) -> list[Metric]:
    """The probe's own outcome, present on every probe (also when the host was not even dialled)."""
    if health_state not in HEALTH_STATES:
        raise ValueError(f"unknown health state {health_state!r}, expected one of {HEALTH_STATES}")
    tail = tuple(extra.values())
    families: list[Metric] = [
        gauge(
            "optilab_probe_success",
            "Whether the host was read over SSH in this probe.",
            1.0 if success else 0.0,
            extra,
        ),
        gauge("optilab_probe_duration_seconds", "How long the probe took, in seconds.", duration_seconds, extra),
        gauge(
            "system_status",
            "Whether the host was reachable in this probe (1) or not (0).",
            1.0 if success else 0.0,
            labels.with_extra(extra),
        ),
    ]
    health = GaugeMetricFamily(
        "optilab_host_health_state",
        "Health state of the host: 1 for the current state, 0 for the others.",
        labels=("state", *extra),
    )
    for state in HEALTH_STATES:
        health.add_metric((state, *tail), 1.0 if state == health_state else 0.0)
    families.append(health)
    if not success and error_reason is not None:
        families.append(
            gauge("optilab_probe_error_info", "Why the probe failed; 1 when it did.", 1.0,
                  {"reason": error_reason, **extra})
        )
    return families


class _Families(Collector):
    """The smallest collector generate_latest accepts: it only calls ``collect()``."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def merge_families(families: list[Metric]) -> list[Metric]:
    """One family per name, samples concatenated in order: the text format allows each name once, and a
    fan-out probe produces the same family for every host."""
    merged: dict[str, Metric] = {}
    for family in families:
        if family.name in merged:
            merged[family.name].samples.extend(family.samples)
        else:
            clone = copy.copy(family)
            clone.samples = list(family.samples)
            merged[family.name] = clone
    return list(merged.values())


def render(families: list[Metric]) -> bytes:
    """Prometheus text exposition format 0.0.4, written by prometheus_client itself."""
    return generate_latest(_Families(merge_families(families)))
