"""Pure parsers for mounted filesystems: /proc/mounts, ``df -PTk`` and ``df -PTi``, and their join.

node_exporter lists filesystems from the mount table and calls statfs(2) on each. Over SSH with
only a POSIX shell, ``df`` is the portable statfs: ``-P`` fixes the column layout (GNU coreutils and
busybox alike), ``-T`` adds the type, ``-k`` makes blocks 1024 bytes, ``-i`` gives inodes instead.
The mount table supplies node_exporter's labels and the read-only flag; df supplies the numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


@dataclass(frozen=True)
class DfRow:
    """One ``df -PT`` line. Units are whatever the flags asked for: KiB blocks or inodes."""

    device: str
    fstype: str
    total: int
    used: int
    available: int
    mountpoint: str


@dataclass(frozen=True)
class Filesystem:
    """One mounted filesystem as node_exporter reports it; numbers are ``None`` where df had no row."""

    device: str
    fstype: str
    mountpoint: str
    readonly: bool | None
    size_bytes: int | None = None
    free_bytes: int | None = None
    avail_bytes: int | None = None
    files: int | None = None
    files_free: int | None = None


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in mount fields as ``\\040`` and friends."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mounts(text: str) -> tuple[Mount, ...]:
    """Parse /proc/mounts (``device mountpoint fstype options dump pass``)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 4:
            raise ValueError(f"malformed mounts line: {line!r}")
        device, mountpoint, fstype, options = fields[:4]
        mounts.append(Mount(_unescape(device), _unescape(mountpoint), fstype, tuple(options.split(","))))
    if not mounts:
        raise ValueError("empty mount table")
    return tuple(mounts)


def _df_records(text: str) -> list[list[str]]:
    """Data lines of df split into 7 fields (the mount point may contain spaces).

    Busybox without ``-P`` support, and old versions, wrap a long device name onto its own line; such
    a one-field line is joined with the next one.
    """
    lines = text.splitlines()
    if not lines or not lines[0].startswith("Filesystem"):
        raise ValueError("df output without its 'Filesystem' header")
    records: list[list[str]] = []
    pending = ""
    for line in lines[1:]:
        if not line.strip():
            continue
        line = f"{pending} {line}" if pending else line
        fields = line.split(None, 6)
        if len(fields) == 1:
            pending = line
            continue
        pending = ""
        if len(fields) != 7:
            raise ValueError(f"malformed df line: {line!r}")
        records.append(fields)
    if pending:
        raise ValueError(f"df output cut after device {pending!r}")
    return records


def _count(field: str) -> int:
    """A df number; ``-`` (GNU df for filesystems without inodes) counts as 0 like statfs reports it."""
    return 0 if field == "-" else int(field)


def parse_df(text: str) -> dict[str, DfRow]:
    """Parse ``df -PT`` output into ``{mountpoint: row}``; the last row for a point wins (over-mount)."""
    rows: dict[str, DfRow] = {}
    for device, fstype, total, used, available, _percent, mountpoint in _df_records(text):
        rows[mountpoint] = DfRow(device, fstype, _count(total), _count(used), _count(available), mountpoint)
    return rows


#: ``df -PTk`` and ``df -PTi`` share their format; two names keep one parser per section.
parse_dfi = parse_df


def _stats_for(mount: Mount, rows: dict[str, DfRow]) -> DfRow | None:
    """The df row of a mount: by mount point, else by block device (a bind mount shares its statfs).

    GNU df prints a device once however often it is mounted; statfs on any of its mount points would
    give the same numbers, so the other mount points borrow them. Only ``/dev/...``-style devices
    are matched that way, as every tmpfs is called ``tmpfs``.
    """
    if mount.mountpoint in rows:
        return rows[mount.mountpoint]
    if mount.device.startswith("/"):
        same_device = [row for row in rows.values() if row.device == mount.device]
        if len(same_device) == 1:
            return same_device[0]
    return None


def join_filesystems(
    mounts: tuple[Mount, ...] | None, df: dict[str, DfRow] | None, dfi: dict[str, DfRow] | None
) -> tuple[Filesystem, ...] | None:
    """Combine the three sections; whichever of them parsed contributes, ``None`` only if neither list did.

    Without the mount table, df's own rows give the labels and the read-only flag stays unknown.
    """
    if mounts is None:
        if df is None and dfi is None:
            return None
        rows = {**(dfi or {}), **(df or {})}
        mounts = tuple(Mount(row.device, row.mountpoint, row.fstype, ()) for row in rows.values())
        known_readonly = False
    else:
        known_readonly = True
    filesystems = []
    for mount in mounts:
        blocks = _stats_for(mount, df) if df is not None else None
        inodes = _stats_for(mount, dfi) if dfi is not None else None
        filesystems.append(
            Filesystem(
                device=mount.device,
                fstype=mount.fstype,
                mountpoint=mount.mountpoint,
                readonly=mount.readonly if known_readonly else None,
                size_bytes=blocks.total * 1024 if blocks else None,
                free_bytes=(blocks.total - blocks.used) * 1024 if blocks else None,
                avail_bytes=blocks.available * 1024 if blocks else None,
                files=inodes.total if inodes else None,
                files_free=inodes.available if inodes else None,
            )
        )
    return tuple(filesystems)
