"""btrfs: ``node_btrfs_*`` per filesystem from /sys/fs/btrfs/<uuid>/ (node_exporter's btrfs collector).

The allocation figures, the label and the device sizes come from sysfs exactly as upstream reads
them (procfs' btrfs reader: a file that is absent counts 0; a RAID profile's allocation ratio from
the number of devices). Upstream additionally asks the kernel per device through ioctls
(BTRFS_IOC_DEV_INFO, GET_DEV_STATS), which need root: as root it exports ``device_errors_total``,
``device_unused_bytes`` and a ``btrfs_dev_uuid`` label; when the ioctls fail (not root) it exports
``device_size_bytes{uuid,device}`` from sysfs — the form served here, since no file carries the
error counters.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices
from optilab.exporter.family import Family

PREFIX = "/sys/fs/btrfs/"
GROUPS = ("data", "metadata", "system")
_SECTOR = 512


def _value(files: dict[str, str], name: str) -> int:
    text = files.get(name, "")
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"btrfs {name}: {text[:30]!r} is not a number")
    return int(text)


def ratio(mode: str, devices_count: int) -> float:
    if mode in ("single", "raid0"):
        return 1.0
    if mode in ("dup", "raid1", "raid10"):
        return 2.0
    if mode == "raid5":
        return devices_count / (devices_count - 1) if devices_count != 1 else float("inf")
    if mode == "raid6":
        return devices_count / (devices_count - 2) if devices_count != 2 else float("inf")
    return 0.0


def parse(sources: Sources) -> dict[str, dict[str, str]]:
    """``{filesystem directory: {relative file: text}}`` for the uuid-named directories."""
    return {name: files for name, files in devices(sources, PREFIX).items() if "-" in name}


def build(filesystems: dict[str, dict[str, str]]) -> list[Family]:
    info = Family("node_btrfs_info", "gauge", "Filesystem information", ("uuid", "label"))
    rsv = Family("node_btrfs_global_rsv_size_bytes", "gauge", "Size of global reserve.", ("uuid",))
    reserved = Family(
        "node_btrfs_reserved_bytes", "gauge", "Amount of space reserved for a data type", ("uuid", "block_group_type")
    )
    layout = ("uuid", "block_group_type", "mode")
    used = Family("node_btrfs_used_bytes", "gauge", "Amount of used space by a layout/data type", layout)
    size = Family("node_btrfs_size_bytes", "gauge", "Amount of space allocated for a layout/data type", layout)
    alloc = Family("node_btrfs_allocation_ratio", "gauge", "Data allocation ratio for a layout/data type", layout)
    dev_size = Family(
        "node_btrfs_device_size_bytes", "gauge", "Size of a device that is part of the filesystem.", ("uuid", "device")
    )
    for directory in sorted(filesystems):
        files = filesystems[directory]
        uuid = files.get("metadata_uuid") or directory
        disks = sorted({path.split("/")[1] for path in files if path.startswith("devices/") and path.count("/") == 2})
        info.add((uuid, files.get("label", "")), 1.0)
        rsv.add((uuid,), _value(files, "allocation/global_rsv_size"))
        for group in GROUPS:
            base = f"allocation/{group}/"
            reserved.add((uuid, group), _value(files, base + "bytes_reserved"))
            modes = sorted(
                {path[len(base) :].split("/")[0] for path in files if path.startswith(base) and path.count("/") == 3}
            )
            for mode in modes:
                used.add((uuid, group, mode), _value(files, f"{base}{mode}/used_bytes"))
                size.add((uuid, group, mode), _value(files, f"{base}{mode}/total_bytes"))
                alloc.add((uuid, group, mode), ratio(mode, len(disks)))
        for disk in disks:
            dev_size.add((uuid, disk), _SECTOR * _value(files, f"devices/{disk}/size"))
    return [info, rsv, reserved, used, size, alloc, dev_size]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    filesystems = parse(sources)
    return build(filesystems) if filesystems else []


COLLECTOR = Collector(
    "btrfs",
    (
        PREFIX + "*-*/label",
        PREFIX + "*-*/metadata_uuid",
        PREFIX + "*-*/allocation/global_rsv_size",
        *(f"{PREFIX}*-*/allocation/{group}/bytes_reserved" for group in GROUPS),
        *(f"{PREFIX}*-*/allocation/{group}/*/{file}" for group in GROUPS for file in ("total_bytes", "used_bytes")),
        PREFIX + "*-*/devices/*/size",
    ),
    collect,
)
