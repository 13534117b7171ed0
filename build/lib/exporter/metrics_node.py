"""node_exporter-compatible metric families built from a :class:`HostSnapshot`.

Names, types, label names, units and HELP texts follow node_exporter 1.x (the cpu, meminfo,
filesystem, loadavg, netdev, stat, time, filefd, uname and os collectors), so the "Node Exporter
Full" dashboard and node-mixin alerts work on OptiLab data unchanged. A test compares our output with
the real node_exporter's on this machine.

Every function builds fresh families from one snapshot part and returns nothing for a part that
failed to parse: a missing series is honest, a made-up zero is not. Each also takes ``extra``, labels
that every sample carries (``instance`` and ``department`` in a fan-out, none for a single target):
built in from the start, because copying ~200 samples per host afterwards cost more than building them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.parsers import HostSnapshot
from exporter.parsers_fs import Filesystem
from exporter.parsers_host import Uname
from exporter.parsers_proc import FileFd, LoadAvg, Meminfo, Stat

#: node_exporter's default ``--collector.filesystem.mount-points-exclude``.
MOUNTPOINTS_EXCLUDE = re.compile(
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
#: node_exporter's default ``--collector.filesystem.fs-types-exclude`` (tmpfs is deliberately kept).
FSTYPES_EXCLUDE = re.compile(
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue"
    r"|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$"
)

#: node_os_info's label names in node_exporter 1.5, each from the os-release key of the same name.
OS_INFO_LABELS = (
    "build_id",
    "id",
    "id_like",
    "image_id",
    "image_version",
    "name",
    "pretty_name",
    "variant",
    "variant_id",
    "version",
    "version_codename",
    "version_id",
)
_OS_VERSION = re.compile(r"^[0-9]+\.?[0-9]*")

#: Labels added to every sample of a probe (``instance``, ``department`` in a fan-out; else none).
Extra = Mapping[str, str]
NO_EXTRA: Extra = MappingProxyType({})  # read-only: a shared default must not be filled by accident


def gauge(name: str, help_text: str, value: float, extra: Extra) -> GaugeMetricFamily:
    """A gauge with one sample whose only labels are ``extra``."""
    family = GaugeMetricFamily(name, help_text, labels=extra.keys())
    family.add_metric(extra.values(), value)
    return family


def counter(name: str, help_text: str, value: float, extra: Extra) -> CounterMetricFamily:
    """A counter with one sample whose only labels are ``extra``."""
    family = CounterMetricFamily(name, help_text, labels=extra.keys())
    family.add_metric(extra.values(), value)
    return family


def cpu_families(stat: Stat, extra: Extra = NO_EXTRA) -> list[Metric]:
    names, tail = ("cpu", "mode", *extra), tuple(extra.values())
    seconds = CounterMetricFamily("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", labels=names)
    guest = CounterMetricFamily(
        "node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.", labels=names
    )
    for cpu, times in stat.cpus.items():
        for mode, value in times.modes().items():
            seconds.add_metric((cpu, mode, *tail), value)
        guest.add_metric((cpu, "user", *tail), times.guest)
        guest.add_metric((cpu, "nice", *tail), times.guest_nice)
    return [seconds, guest]


def stat_families(stat: Stat, extra: Extra = NO_EXTRA) -> list[Metric]:
    specs = [
        (gauge, "node_boot_time_seconds", "Node boot time, in unixtime.", stat.boot_time),
        (
            counter,
            "node_context_switches_total",
            "Total number of context switches.",
            stat.context_switches,
        ),
        (counter, "node_intr_total", "Total number of interrupts serviced.", stat.interrupts),
        (counter, "node_forks_total", "Total number of forks.", stat.forks),
        (
            gauge,
            "node_procs_running",
            "Number of processes in runnable state.",
            stat.procs_running,
        ),
        (
            gauge,
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            stat.procs_blocked,
        ),
    ]
    return [
        build(name, help_text, value, extra) for build, name, help_text, value in specs if value is not None
    ]


@lru_cache(maxsize=1024)
def _memory_name(field: str, unit: str) -> tuple[str, str]:
    """Name and HELP of one /proc/meminfo field: ``Active(anon)`` → ``node_memory_Active_anon_bytes``,
    as node_exporter names it. Cached: every host repeats the same few dozen fields on every scrape."""
    key = re.sub(r"\((.*)\)", r"_\1", field) + unit
    return f"node_memory_{key}", f"Memory information field {key}."


def meminfo_families(meminfo: Meminfo, extra: Extra = NO_EXTRA) -> list[Metric]:
    fields = [(_memory_name(field, "_bytes"), value) for field, value in meminfo.bytes.items()]
    fields += [(_memory_name(field, ""), value) for field, value in meminfo.counts.items()]
    return [gauge(name, help_text, value, extra) for (name, help_text), value in fields]


def loadavg_families(load: LoadAvg, extra: Extra = NO_EXTRA) -> list[Metric]:
    return [
        gauge(f"node_load{minutes}", f"{minutes}m load average.", value, extra)
        for minutes, value in ((1, load.load1), (5, load.load5), (15, load.load15))
    ]


def netdev_families(netdev: dict[str, dict[str, int]], extra: Extra = NO_EXTRA) -> list[Metric]:
    """One counter per /proc/net/dev column; no device is excluded (node_exporter keeps ``lo`` too)."""
    names, tail = ("device", *extra), tuple(extra.values())
    families: dict[str, CounterMetricFamily] = {}
    for device, counters in netdev.items():
        for column, value in counters.items():
            if column not in families:
                families[column] = CounterMetricFamily(
                    f"node_network_{column}_total", f"Network device statistic {column}.", labels=names
                )
            families[column].add_metric((device, *tail), value)
    return list(families.values())


def exported_filesystems(filesystems: Iterable[Filesystem]) -> list[Filesystem]:
    """Apply node_exporter's default exclusions and its once-per-label-set rule (repeated mounts)."""
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for fs in filesystems:
        key = (fs.device, fs.fstype, fs.mountpoint)
        if key in seen or MOUNTPOINTS_EXCLUDE.match(fs.mountpoint) or FSTYPES_EXCLUDE.match(fs.fstype):
            continue
        seen.add(key)
        kept.append(fs)
    return kept


_FILESYSTEM_GAUGES = (
    ("node_filesystem_size_bytes", "Filesystem size in bytes.", "size_bytes"),
    ("node_filesystem_free_bytes", "Filesystem free space in bytes.", "free_bytes"),
    ("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", "avail_bytes"),
    ("node_filesystem_files", "Filesystem total file nodes.", "files"),
    ("node_filesystem_files_free", "Filesystem total free file nodes.", "files_free"),
    ("node_filesystem_readonly", "Filesystem read-only status.", "readonly"),
)


def filesystem_families(filesystems: Iterable[Filesystem], extra: Extra = NO_EXTRA) -> list[Metric]:
    """Gauges per filesystem; a value df did not report is left out rather than guessed."""
    families = []
    names, tail = ("device", "fstype", "mountpoint", *extra), tuple(extra.values())
    kept = [(fs, (fs.device, fs.fstype, fs.mountpoint, *tail)) for fs in exported_filesystems(filesystems)]
    for name, help_text, attribute in _FILESYSTEM_GAUGES:
        family = GaugeMetricFamily(name, help_text, labels=names)
        for fs, label_values in kept:
            value = getattr(fs, attribute)
            if value is not None:
                family.add_metric(label_values, float(value))
        if family.samples:
            families.append(family)
    return families


def filefd_families(filefd: FileFd, extra: Extra = NO_EXTRA) -> list[Metric]:
    return [
        gauge("node_filefd_allocated", "File descriptor statistics: allocated.", filefd.allocated, extra),
        gauge("node_filefd_maximum", "File descriptor statistics: maximum.", filefd.maximum, extra),
    ]


def uname_families(uname: Uname, extra: Extra = NO_EXTRA) -> list[Metric]:
    """node_uname_info: a gauge of 1 as in node_exporter; dashboards pick hosts by nodename."""
    labels = {
        "sysname": uname.sysname,
        "release": uname.release,
        "version": uname.version,
        "machine": uname.machine,
        "nodename": uname.nodename,
        "domainname": uname.domainname,
        **extra,
    }
    family = GaugeMetricFamily(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        labels=labels.keys(),
    )
    family.add_metric(labels.values(), 1)
    return [family]


def os_families(osrelease: dict[str, str], extra: Extra = NO_EXTRA) -> list[Metric]:
    """node_os_info (every label always present, empty when unset) and node_os_version (major.minor)."""
    labels = {**{label: osrelease.get(label.upper(), "") for label in OS_INFO_LABELS}, **extra}
    info = GaugeMetricFamily(
        "node_os_info",
        "A metric with a constant '1' value labeled by " + ", ".join(OS_INFO_LABELS) + ".",
        labels=labels.keys(),
    )
    info.add_metric(labels.values(), 1)
    families: list[Metric] = [info]
    version = _OS_VERSION.match(osrelease.get("VERSION_ID", ""))
    if version:
        labels = {**{key.lower(): osrelease.get(key, "") for key in ("ID", "ID_LIKE", "NAME")}, **extra}
        family = GaugeMetricFamily(
            "node_os_version",
            "Metric containing the major.minor part of the OS version.",
            labels=labels.keys(),
        )
        family.add_metric(labels.values(), float(version.group()))
        families.append(family)
    return families


def time_families(target_clock: float, extra: Extra = NO_EXTRA) -> list[Metric]:
    """The target's own clock, so that time minus boot time is measured on one clock."""
    return [gauge("node_time_seconds", "System time in seconds since epoch (1970).", target_clock, extra)]


def node_families(snapshot: HostSnapshot, extra: Extra = NO_EXTRA) -> list[Metric]:
    """All node_exporter families the snapshot has data for."""
    parts = [
        (snapshot.stat, cpu_families),
        (snapshot.stat, stat_families),
        (snapshot.meminfo, meminfo_families),
        (snapshot.loadavg, loadavg_families),
        (snapshot.netdev, netdev_families),
        (snapshot.filesystems, filesystem_families),
        (snapshot.filefd, filefd_families),
        (snapshot.uname, uname_families),
        (snapshot.osrelease, os_families),
        (snapshot.time, time_families),
    ]
    families: list[Metric] = []
    for part, build in parts:
        if part is not None:
            families.extend(build(part, extra))
    return families


def collector_success_families(
    section_errors: dict[str, str], sections: Iterable[str], extra: Extra = NO_EXTRA
) -> list[Metric]:
    """``node_scrape_collector_success{collector=<section>}``: 0 for each section that failed."""
    tail = tuple(extra.values())
    family = GaugeMetricFamily(
        "node_scrape_collector_success",
        "node_exporter: Whether a collector succeeded.",
        labels=("collector", *extra),
    )
    for section in sections:
        family.add_metric((section, *tail), 0.0 if section in section_errors else 1.0)
    return [family]
