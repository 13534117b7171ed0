"""Pure parsers for the kernel's /proc text files: /proc/stat, meminfo, loadavg, net/dev, file-nr.

Each function takes the text of one file (a source of the collection request) and returns plain data,
or raises ``ValueError`` saying what is wrong; the collector using it then reports failure alone.
The kernel writes these files, so their format is the same on every distribution — only the set of
fields changes with the kernel version, and every parser accepts a field being absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

#: /proc/stat counts CPU time in USER_HZ ticks, which the kernel ABI fixes at 100 on every architecture.
USER_HZ = 100

#: node_exporter's ``mode`` label values, in /proc/stat column order.
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True)
class CpuTimes:
    """Seconds one CPU (or all of them, for the ``cpu`` line) spent per mode since boot.

    ``user`` and ``nice`` already include ``guest`` and ``guest_nice`` (the kernel counts guest time
    twice), so :meth:`modes` leaves the guest fields out (as node_exporter's cpu collector does).
    """

    user: float = 0.0
    nice: float = 0.0
    system: float = 0.0
    idle: float = 0.0
    iowait: float = 0.0
    irq: float = 0.0
    softirq: float = 0.0
    steal: float = 0.0
    guest: float = 0.0
    guest_nice: float = 0.0

    def modes(self) -> dict[str, float]:
        """``{mode: seconds}`` for node_exporter's eight modes."""
        return dict(
            zip(
                CPU_MODES,
                (self.user, self.nice, self.system, self.idle, self.iowait, self.irq, self.softirq, self.steal),
                strict=True,
            )
        )


@dataclass(frozen=True)
class Stat:
    """/proc/stat: per-CPU times plus the system-wide counters node_exporter's stat collector reads.

    Counters other than CPU times are ``None`` when the kernel did not print them.
    """

    total: CpuTimes
    cpus: dict[str, CpuTimes]
    boot_time: int | None = None
    context_switches: int | None = None
    interrupts: int | None = None
    forks: int | None = None
    procs_running: int | None = None
    procs_blocked: int | None = None


@dataclass(frozen=True)
class Meminfo:
    """/proc/meminfo split by unit: ``kB`` fields converted to bytes, unit-less ones (HugePages_*) as counts.

    Keys keep the kernel's spelling (``Active(anon)``); naming them for Prometheus is the metrics' job.
    """

    bytes: dict[str, int]
    counts: dict[str, int]


@dataclass(frozen=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float


@dataclass(frozen=True)
class FileFd:
    """/proc/sys/fs/file-nr: allocated handles and the system-wide maximum."""

    allocated: int
    maximum: int


def _cpu_times(fields: list[str]) -> CpuTimes:
    """Ticks to seconds; kernels before 2.6.33 print fewer columns and the missing ones stay 0."""
    if not fields:
        raise ValueError("cpu line without values")
    seconds = [int(value) / USER_HZ for value in fields[:10]]
    return CpuTimes(*seconds)


_STAT_COUNTERS = {
    "btime": "boot_time",
    "ctxt": "context_switches",
    "intr": "interrupts",
    "processes": "forks",
    "procs_running": "procs_running",
    "procs_blocked": "procs_blocked",
}


def parse_stat(text: str) -> Stat:
    """Parse /proc/stat; the aggregate ``cpu`` line is required, every other line is optional."""
    total: CpuTimes | None = None
    cpus: dict[str, CpuTimes] = {}
    counters: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        key = fields[0]
        if key == "cpu":
            total = _cpu_times(fields[1:])
        elif key.startswith("cpu") and key[3:].isdigit():
            cpus[key[3:]] = _cpu_times(fields[1:])
        elif key in _STAT_COUNTERS and len(fields) > 1:
            counters[_STAT_COUNTERS[key]] = int(fields[1])
    if total is None:
        raise ValueError("no aggregate 'cpu' line")
    return Stat(total=total, cpus=cpus, **counters)


def parse_meminfo(text: str) -> Meminfo:
    """Parse ``Field:   value [kB]`` lines; ``MemTotal`` must be there or the section is useless."""
    in_bytes: dict[str, int] = {}
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or len(parts) > 2:
            raise ValueError(f"malformed meminfo line: {line!r}")
        value = int(parts[0])
        if len(parts) == 2:
            if parts[1] != "kB":
                raise ValueError(f"unknown meminfo unit in {line!r}")
            in_bytes[name.strip()] = value * 1024
        else:
            counts[name.strip()] = value
    if "MemTotal" not in in_bytes:
        raise ValueError("no MemTotal line")
    return Meminfo(bytes=in_bytes, counts=counts)


def parse_loadavg(text: str) -> LoadAvg:
    """Parse ``0.13 0.18 0.11 1/150 10627``: the first three fields."""
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"expected 3 load averages, got {text.strip()!r}")
    return LoadAvg(float(fields[0]), float(fields[1]), float(fields[2]))


def _netdev_columns(header: str) -> list[str]:
    """Column names from the second header line, ``receive_``/``transmit_`` prefixed by group.

    Reading them from the header (rather than a fixed list) keeps old kernels with fewer columns right.
    """
    groups = header.split("|")
    if len(groups) != 3:
        raise ValueError(f"unexpected net/dev header: {header!r}")
    return [f"receive_{name}" for name in groups[1].split()] + [f"transmit_{name}" for name in groups[2].split()]


def parse_netdev(text: str) -> dict[str, dict[str, int]]:
    """Parse /proc/net/dev into ``{device: {"receive_bytes": n, ..., "transmit_colls": n}}``.

    The device name ends at the last colon: old kernels glue large counters to it (``eth0:123``).
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError("net/dev without its two header lines")
    columns = _netdev_columns(lines[1])
    devices: dict[str, dict[str, int]] = {}
    for line in lines[2:]:
        name, sep, rest = line.rpartition(":")
        values = rest.split()
        if not sep or len(values) != len(columns):
            raise ValueError(f"malformed net/dev line: {line!r}")
        devices[name.strip()] = {column: int(value) for column, value in zip(columns, values, strict=True)}
    return devices


def parse_filefd(text: str) -> FileFd:
    """Parse file-nr's three numbers: allocated, allocated-but-unused (always 0 since 2.6), maximum."""
    fields = text.split()
    if len(fields) != 3:
        raise ValueError(f"expected 3 numbers in file-nr, got {text.strip()!r}")
    return FileFd(allocated=int(fields[0]), maximum=int(fields[2]))


#: The cpu and stat collectors and the probe's CPU percent all read the same /proc/stat text of a
#: probe: parse it once (a Stat is immutable; the key is the text itself).
parse_stat_cached = lru_cache(maxsize=64)(parse_stat)
#: the meminfo and lab collectors read the same /proc/meminfo text (a Meminfo is not changed by them)
parse_meminfo_cached = lru_cache(maxsize=64)(parse_meminfo)
