"""Turn the batched script's sections into one :class:`HostSnapshot`, losing only what failed.

A probe runs one script (``exporter/command.py``) whose output is split into sections; this module
parses each section on its own with a pure function (text → data, in ``parsers_proc``,
``parsers_fs`` and ``parsers_host``) and gathers the results. A section that is missing, cut short or
unparseable becomes ``None`` in the snapshot plus a readable entry in the error dict, which the
metrics turn into ``node_scrape_collector_success{collector=<section>} 0``; all other sections stay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.parsers_fs import (
    DfRow,
    Filesystem,
    Mount,
    join_filesystems,
    parse_df,
    parse_dfi,
    parse_mounts,
)
from exporter.parsers_host import Session, Uname, parse_osrelease, parse_time, parse_uname, parse_who
from exporter.parsers_proc import (
    FileFd,
    LoadAvg,
    Meminfo,
    Stat,
    parse_filefd,
    parse_loadavg,
    parse_meminfo,
    parse_netdev,
    parse_stat,
    parse_uptime,
)
from exporter.parsers_seat import SeatReading, parse_seats

__all__ = [
    "PARSERS",
    "HostSnapshot",
    "parse_df",
    "parse_dfi",
    "parse_filefd",
    "parse_loadavg",
    "parse_meminfo",
    "parse_mounts",
    "parse_netdev",
    "parse_osrelease",
    "parse_snapshot",
    "parse_stat",
    "parse_time",
    "parse_uname",
    "parse_uptime",
    "parse_who",
]


@dataclass(frozen=True)
class HostSnapshot:
    """Everything one probe read from a host; ``None`` marks a section that failed.

    Units are node_exporter's: seconds (CPU times already divided by USER_HZ), bytes, plain counts.
    ``filesystems`` is derived from ``mounts``, ``df`` and ``dfi`` together (see ``join_filesystems``).
    """

    stat: Stat | None = None
    meminfo: Meminfo | None = None
    loadavg: LoadAvg | None = None
    uptime: float | None = None
    netdev: dict[str, dict[str, int]] | None = None
    mounts: tuple[Mount, ...] | None = None
    filefd: FileFd | None = None
    df: dict[str, DfRow] | None = None
    dfi: dict[str, DfRow] | None = None
    uname: Uname | None = None
    osrelease: dict[str, str] | None = None
    time: float | None = None
    who: tuple[Session, ...] | None = None
    seats: SeatReading | None = None
    filesystems: tuple[Filesystem, ...] | None = None


#: One pure parser per section of ``exporter.command.SECTIONS`` (a test holds them equal);
#: snapshot field names are the section names.
PARSERS: dict[str, Callable[[str], Any]] = {
    "stat": parse_stat,
    "meminfo": parse_meminfo,
    "loadavg": parse_loadavg,
    "uptime": parse_uptime,
    "netdev": parse_netdev,
    "mounts": parse_mounts,
    "filefd": parse_filefd,
    "df": parse_df,
    "dfi": parse_dfi,
    "uname": parse_uname,
    "osrelease": parse_osrelease,
    "time": parse_time,
    "who": parse_who,
    "seats": parse_seats,
}


def parse_snapshot(sections: dict[str, str], complete: bool = True) -> tuple[HostSnapshot, dict[str, str]]:
    """Parse every section on its own; returns the snapshot and ``{section: error}`` for those that failed.

    ``complete=False`` (``split_sections`` saw no ``end`` marker) means the output was cut: the last
    section that arrived may be partial, so it is treated as failed rather than trusted half-read.
    """
    truncated = None if complete or not sections else list(sections)[-1]
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, parse in PARSERS.items():
        if name not in sections:
            errors[name] = "missing from output"
        elif name == truncated:
            errors[name] = "output cut short"
        else:
            try:
                values[name] = parse(sections[name])
            except (ValueError, IndexError, TypeError) as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
    filesystems = join_filesystems(values.get("mounts"), values.get("df"), values.get("dfi"))
    return HostSnapshot(**values, filesystems=filesystems), errors
