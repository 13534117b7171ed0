"""node_exporter's cpu collector: seconds per CPU and mode from /proc/stat, plus thermal throttles.

``node_cpu_seconds_total{cpu,mode}`` for the eight modes, ``node_cpu_guest_seconds_total{cpu,mode}``
(user, nice), and, where the CPU driver exposes them, ``node_cpu_core_throttles_total{core,package}``
and ``node_cpu_package_throttles_total{package}`` from /sys thermal_throttle counters.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, matching, source
from optilab.exporter.family import Family
from optilab.exporter.parsers_proc import Stat, parse_stat_cached

CPU_SYS = "/sys/devices/system/cpu/cpu"
#: reached through thermal_throttle/.. so that the glob matches (and costs a read) only on CPUs that
#: have throttle counters: the kernel resolves ``..`` only after thermal_throttle exists.
_TOPOLOGY = "/thermal_throttle/../topology/"


def cpu_families(stat: Stat) -> list[Family]:
    seconds = Family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.", ("cpu", "mode"))
    guest = Family(
        "node_cpu_guest_seconds_total",
        "counter",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
        ("cpu", "mode"),
    )
    add_seconds, add_guest = seconds.samples.append, guest.samples.append
    for cpu, times in stat.cpus.items():
        for mode, value in times.modes().items():
            add_seconds(((cpu, mode), value))
        add_guest(((cpu, "user"), times.guest))
        add_guest(((cpu, "nice"), times.guest_nice))
    return [seconds, guest]


def throttle_families(sources: Sources) -> list[Family]:
    """Throttle counters, once per core and once per package (as node_exporter de-duplicates them)."""
    core = Family(
        "node_cpu_core_throttles_total",
        "counter",
        "Number of times this CPU core has been throttled.",
        ("core", "package"),
    )
    package = Family(
        "node_cpu_package_throttles_total",
        "counter",
        "Number of times this CPU package has been throttled.",
        ("package",),
    )
    seen_cores: set[tuple[str, str]] = set()
    seen_packages: set[str] = set()
    counts = matching(sources, CPU_SYS, "/thermal_throttle/core_throttle_count")
    packages = matching(sources, CPU_SYS, "/thermal_throttle/package_throttle_count")
    for cpu in sorted(set(counts) | set(packages), key=lambda c: int(c) if c.isdigit() else -1):
        package_id = sources.get(f"{CPU_SYS}{cpu}{_TOPOLOGY}physical_package_id", "").strip()
        core_id = sources.get(f"{CPU_SYS}{cpu}{_TOPOLOGY}core_id", "").strip()
        if not package_id or not core_id:
            continue
        if cpu in counts and (core_id, package_id) not in seen_cores:
            seen_cores.add((core_id, package_id))
            core.add((core_id, package_id), float(counts[cpu]))
        if cpu in packages and package_id not in seen_packages:
            seen_packages.add(package_id)
            package.add((package_id,), float(packages[cpu]))
    return [core, package]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    return [*cpu_families(parse_stat_cached(source(sources, "/proc/stat"))), *throttle_families(sources)]


COLLECTOR = Collector(
    name="cpu",
    paths=(
        "/proc/stat",
        f"{CPU_SYS}[0-9]*/thermal_throttle/core_throttle_count",
        f"{CPU_SYS}[0-9]*/thermal_throttle/package_throttle_count",
        f"{CPU_SYS}[0-9]*{_TOPOLOGY}physical_package_id",
        f"{CPU_SYS}[0-9]*{_TOPOLOGY}core_id",
    ),
    collect=collect,
)
