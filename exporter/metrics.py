"""The families OptiLab adds to a probe: the lab gauges, the probe's own status, per-collector results.

Everything node_exporter would report comes from the collectors (``exporter/collectors``); this
module adds what is OptiLab's own (names fixed by docs/interfaces.md): the lab gauges with their
``hostname``/``ip``/``department`` labels, ``system_cpu_usage`` from two consecutive reads of a host's
/proc/stat (the probe keeps the previous one), the probe's success, duration and health state, and
``node_scrape_collector_{success,duration_seconds}`` per collector. Fresh families on every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from optilab.exporter.family import Family, gauge
from optilab.exporter.parsers_proc import Stat
from optilab.exporter.parsers_seat import KINDS, STATES, SeatReading
from optilab.exporter.targets import HostLabels

HEALTH_STATES = ("healthy", "degraded", "offline", "dead")
LAB_LABELS = ("hostname", "ip", "department")


def cpu_usage_percent(current: Stat, previous: Stat) -> float | None:
    """Busy percent of all CPUs between two reads of /proc/stat: 100 × (Δtotal − Δidle − Δiowait) / Δtotal.

    ``None`` when a counter went backwards (the host rebooted in between) or no time passed.
    """
    now, before = current.total.modes(), previous.total.modes()
    deltas = {mode: now[mode] - before[mode] for mode in now}
    if any(delta < 0 for delta in deltas.values()):
        return None
    elapsed = sum(deltas.values())
    if elapsed <= 0:
        return None
    return 100.0 * (elapsed - deltas["idle"] - deltas["iowait"]) / elapsed


def lab_families(label_less: Iterable[Family], cpu_percent: float | None, host: HostLabels) -> list[Family]:
    """The lab collector's gauges plus ``system_cpu_usage``, each labelled with the host's lab labels."""
    families = []
    if cpu_percent is not None:
        families.append(
            gauge(
                "system_cpu_usage",
                "Percent of CPU time busy (not idle or iowait) across all CPUs since this host's previous scrape.",
                cpu_percent,
            )
        )
    families.extend(label_less)
    out = []
    for family in families:
        labelled = Family(family.name, family.type, family.help, LAB_LABELS + family.labels)
        labelled.samples = [(host.values + values, value) for values, value in family.samples]
        out.append(labelled)
    return out


def collector_families(results: Mapping[str, tuple[bool, float]]) -> list[Family]:
    """``node_scrape_collector_success`` and ``_duration_seconds`` per collector: {name: (ok, seconds)}."""
    duration = Family(
        "node_scrape_collector_duration_seconds",
        "gauge",
        "node_exporter: Duration of a collector scrape.",
        ("collector",),
    )
    success = Family(
        "node_scrape_collector_success", "gauge", "node_exporter: Whether a collector succeeded.", ("collector",)
    )
    for name, (ok, seconds) in results.items():
        duration.samples.append(((name,), seconds))
        success.samples.append(((name,), 1.0 if ok else 0.0))
    return [duration, success]


def probe_families(
    labels: HostLabels,
    success: bool,
    duration_seconds: float,
    health_state: str,
    error_reason: str | None,
    series_dropped: int = 0,
) -> list[Family]:
    """The probe's own outcome, present on every probe (also when the host was not even dialled)."""
    if health_state not in HEALTH_STATES:
        raise ValueError(f"unknown health state {health_state!r}, expected one of {HEALTH_STATES}")
    status = Family(
        "system_status", "gauge", "Whether the host was reachable in this probe (1) or not (0).", LAB_LABELS
    )
    status.add(labels.values, 1.0 if success else 0.0)
    health = Family(
        "optilab_host_health_state",
        "gauge",
        "Health state of the host: 1 for the current state, 0 for the others.",
        ("state",),
    )
    for state in HEALTH_STATES:
        health.add((state,), 1.0 if state == health_state else 0.0)
    families = [
        gauge("optilab_probe_success", "Whether the host was read over SSH in this probe.", 1.0 if success else 0.0),
        gauge("optilab_probe_duration_seconds", "How long the probe took, in seconds.", duration_seconds),
        status,
        health,
    ]
    if series_dropped:
        families.append(
            gauge(
                "optilab_probe_series_dropped",
                "Series of this host left out because it exceeded the per-host series cap.",
                series_dropped,
            )
        )
    if not success and error_reason is not None:
        error = Family("optilab_probe_error_info", "gauge", "Why the probe failed; 1 when it did.", ("reason",))
        error.add((error_reason,), 1.0)
        families.append(error)
    return families


def seat_families(state: str | None, reading: SeatReading | None, host: HostLabels) -> list[Family]:
    """``optilab_seat_state{state}`` (1 for the current state, 0 for the others) and
    ``optilab_sessions{kind}``, with the host's lab labels; counts only, never a user name. Nothing
    when the state is unknown (the host answered, but not the seats command)."""
    if state is None:
        return []
    seat = Family(
        "optilab_seat_state",
        "gauge",
        "Seat state of the machine: 1 for the current state, 0 for the others (parsers_seat.STATES).",
        ("state", *LAB_LABELS),
    )
    for name in STATES:
        seat.add((name, *host.values), 1.0 if name == state else 0.0)
    families = [seat]
    if reading is not None:
        sessions = Family(
            "optilab_sessions",
            "gauge",
            "Login sessions by kind: local (at the seat) or remote (SSH); the exporter's own session is not counted.",
            ("kind", *LAB_LABELS),
        )
        for kind in KINDS:
            sessions.add((kind, *host.values), float(reading.count(kind)))
        families.append(sessions)
    return families
