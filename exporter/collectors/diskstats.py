"""node_exporter's diskstats collector: /proc/diskstats counters and udev's device properties.

Upstream's default ``device-exclude`` leaves out partitions, ram, loop and floppy devices. Device
properties (``node_disk_info``'s path, wwn, model, serial, revision; filesystem and device-mapper
info; ATA flags) come from udev's database, /run/udev/data/b<major>:<minor>, read in the same request
for the block majors of real disks (SCSI/SATA, md, virtio, Xen, device mapper, NVMe...): not for
loop (7) or ram (1) devices, which the default filter drops anyway and which can number in the
hundreds on a machine with snaps.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family

DEVICE_EXCLUDE = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
UDEV = "/run/udev/data/b"
#: block majors whose udev records are read: sd 8, 65-71, 128-135; md 9; sr 11; dm/virtio/nvme/zram
#: and other dynamic majors 240-259; xvd 202
_MAJOR_GLOBS = ("8", "9", "11", "6[5-9]", "7[01]", "12[89]", "13[0-5]", "202", "2[45][0-9]")
_COUNTERS = (
    ("node_disk_reads_completed_total", "counter", "The total number of reads completed successfully.", 1.0),
    ("node_disk_reads_merged_total", "counter", "The total number of reads merged.", 1.0),
    ("node_disk_read_bytes_total", "counter", "The total number of bytes read successfully.", 512.0),
    ("node_disk_read_time_seconds_total", "counter", "The total number of seconds spent by all reads.", 0.001),
    ("node_disk_writes_completed_total", "counter", "The total number of writes completed successfully.", 1.0),
    ("node_disk_writes_merged_total", "counter", "The number of writes merged.", 1.0),
    ("node_disk_written_bytes_total", "counter", "The total number of bytes written successfully.", 512.0),
    (
        "node_disk_write_time_seconds_total",
        "counter",
        "This is the total number of seconds spent by all writes.",
        0.001,
    ),
    ("node_disk_io_now", "gauge", "The number of I/Os currently in progress.", 1.0),
    ("node_disk_io_time_seconds_total", "counter", "Total seconds spent doing I/Os.", 0.001),
    ("node_disk_io_time_weighted_seconds_total", "counter", "The weighted # of seconds spent doing I/Os.", 0.001),
    ("node_disk_discards_completed_total", "counter", "The total number of discards completed successfully.", 1.0),
    ("node_disk_discards_merged_total", "counter", "The total number of discards merged.", 1.0),
    ("node_disk_discarded_sectors_total", "counter", "The total number of sectors discarded successfully.", 1.0),
    (
        "node_disk_discard_time_seconds_total",
        "counter",
        "This is the total number of seconds spent by all discards.",
        0.001,
    ),
    ("node_disk_flush_requests_total", "counter", "The total number of flush requests completed successfully", 1.0),
    (
        "node_disk_flush_requests_time_seconds_total",
        "counter",
        "This is the total number of seconds spent by all flush requests.",
        0.001,
    ),
)
_ATA = (
    ("ID_ATA_WRITE_CACHE", "node_disk_ata_write_cache", "ATA disk has a write cache."),
    ("ID_ATA_WRITE_CACHE_ENABLED", "node_disk_ata_write_cache_enabled", "ATA disk has its write cache enabled."),
    ("ID_ATA_ROTATION_RATE_RPM", "node_disk_ata_rotation_rate_rpm", "ATA disk rotation rate in RPMs (0 for SSDs)."),
)


def parse_diskstats(text: str) -> list[tuple[str, str, str, list[int]]]:
    """(major, minor, device, counters) per line; kernels print 11, 15 or 17 counters."""
    disks = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 14:
            raise ValueError(f"diskstats line with {len(fields)} fields")
        disks.append((fields[0], fields[1], fields[2], [int(value) for value in fields[3:]]))
    return disks


def parse_udev(text: str) -> dict[str, str]:
    """``E:KEY=value`` properties of one udev database record."""
    return dict(line[2:].split("=", 1) for line in text.splitlines() if line.startswith("E:") and "=" in line)


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    info = Family(
        "node_disk_info",
        "gauge",
        "Info of /sys/block/<block_device>.",
        ("device", "major", "minor", "path", "wwn", "model", "serial", "revision"),
    )
    counters = [Family(name, kind, help_text, ("device",)) for name, kind, help_text, _ in _COUNTERS]
    fs_info = Family(
        "node_disk_filesystem_info",
        "gauge",
        "Info about disk filesystem.",
        ("device", "type", "usage", "uuid", "version"),
    )
    dm_info = Family(
        "node_disk_device_mapper_info",
        "gauge",
        "Info about disk device mapper.",
        ("device", "name", "uuid", "vg_name", "lv_name", "lv_layer"),
    )
    ata = [Family(name, "gauge", help_text, ("device",)) for _, name, help_text in _ATA]
    for major, minor, device, values in parse_diskstats(source(sources, "/proc/diskstats")):
        if not options.keep("device-include", "device-exclude", device):
            continue
        udev = parse_udev(sources.get(f"{UDEV}{major}:{minor}", ""))
        info.add(
            (
                device,
                major,
                minor,
                udev.get("ID_PATH", ""),
                udev.get("ID_WWN", ""),
                udev.get("ID_MODEL", ""),
                udev.get("ID_SERIAL_SHORT", ""),
                udev.get("ID_REVISION", ""),
            ),
            1.0,
        )
        for family, value, (_, _, _, factor) in zip(counters, values, _COUNTERS, strict=False):
            family.samples.append(((device,), value * factor))
        if udev.get("ID_FS_TYPE"):
            fs_info.add(
                (
                    device,
                    udev["ID_FS_TYPE"],
                    udev.get("ID_FS_USAGE", ""),
                    udev.get("ID_FS_UUID", ""),
                    udev.get("ID_FS_VERSION", ""),
                ),
                1.0,
            )
        if udev.get("DM_NAME"):
            dm_info.add(
                (
                    device,
                    udev["DM_NAME"],
                    udev.get("DM_UUID", ""),
                    udev.get("DM_VG_NAME", ""),
                    udev.get("DM_LV_NAME", ""),
                    udev.get("DM_LV_LAYER", ""),
                ),
                1.0,
            )
        if udev.get("ID_ATA"):
            for family, (key, _, _) in zip(ata, _ATA, strict=True):
                try:
                    family.add((device,), float(udev[key]))
                except (KeyError, ValueError):
                    continue
    return [info, *counters, fs_info, dm_info, *ata]


COLLECTOR = Collector(
    name="diskstats",
    paths=("/proc/diskstats", *(f"{UDEV}{major}:[0-9]*" for major in _MAJOR_GLOBS)),
    collect=collect,
    flags=(("device-include", ""), ("device-exclude", DEVICE_EXCLUDE)),
)
