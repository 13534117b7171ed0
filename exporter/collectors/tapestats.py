"""tapestats: ``node_tape_*`` per SCSI tape drive from /sys/class/scsi_tape/st<N>/stats/ (node_exporter's
tapestats collector; nanoseconds -> seconds; a missing counter counts 0 as in procfs' struct).
``--collector.tapestats.ignored-devices`` (default ``^$``) is an unanchored regex. Only ``stN`` devices
count (not the ``nstN`` and mode variants).
"""

from __future__ import annotations

import re

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices, go_int
from optilab.exporter.family import Family

PREFIX = "/sys/class/scsi_tape/"
_DEVICE = re.compile(r"^st[0-9]+$")
#: (stats file, metric, type, scale, HELP) in upstream's order
METRICS = (
    ("in_flight", "node_tape_io_now", "gauge", 1.0, "The number of I/Os currently outstanding to this device."),
    (
        "io_ns",
        "node_tape_io_time_seconds_total",
        "counter",
        1e-9,
        "The amount of time spent waiting for all I/O to complete (including read and write). This includes tape "
        "movement commands such as seeking between file or set marks and implicit tape movement such as when rewind "
        "on close tape devices are used.",
    ),
    (
        "other_cnt",
        "node_tape_io_others_total",
        "counter",
        1.0,
        "The number of I/Os issued to the tape drive other than read or write commands. The time taken to complete "
        "these commands uses the following calculation io_time_seconds_total-read_time_seconds_total-"
        "write_time_seconds_total",
    ),
    ("read_byte_cnt", "node_tape_read_bytes_total", "counter", 1.0, "The number of bytes read from the tape drive."),
    (
        "read_cnt",
        "node_tape_reads_completed_total",
        "counter",
        1.0,
        "The number of read requests issued to the tape drive.",
    ),
    (
        "read_ns",
        "node_tape_read_time_seconds_total",
        "counter",
        1e-9,
        "The amount of time spent waiting for read requests to complete.",
    ),
    (
        "resid_cnt",
        "node_tape_residual_total",
        "counter",
        1.0,
        "The number of times during a read or write we found the residual amount to be non-zero. This should mean that "
        "a program is issuing a read larger thean the block size on tape. For write not all data made it to tape.",
    ),
    (
        "write_byte_cnt",
        "node_tape_written_bytes_total",
        "counter",
        1.0,
        "The number of bytes written to the tape drive.",
    ),
    (
        "write_cnt",
        "node_tape_writes_completed_total",
        "counter",
        1.0,
        "The number of write requests issued to the tape drive.",
    ),
    (
        "write_ns",
        "node_tape_write_time_seconds_total",
        "counter",
        1e-9,
        "The amount of time spent waiting for write requests to complete.",
    ),
)


def parse(sources: Sources) -> dict[str, dict[str, int]]:
    tapes: dict[str, dict[str, int]] = {}
    found = devices(sources, PREFIX)
    if found and not any(_DEVICE.match(name) for name in found):
        raise ValueError("no stN tape device in the answer")
    for name, files in found.items():
        if not _DEVICE.match(name):
            continue
        counts = {}
        for attr, text in files.items():
            value = go_int(text)
            if value is None or value < 0:
                raise ValueError(f"{PREFIX}{name}/{attr}: {text[:30]!r} is not a counter")
            counts[attr.removeprefix("stats/")] = value
        tapes[name] = counts
    return tapes


def build(tapes: dict[str, dict[str, int]], options: CollectorOptions) -> list[Family]:
    ignored = options.regex("ignored-devices")
    families = [Family(name, kind, help_text, ("device",)) for _, name, kind, _, help_text in METRICS]
    for tape in sorted(tapes):
        if ignored is not None and ignored.search(tape):
            continue
        for family, (file, _, _, scale, _) in zip(families, METRICS, strict=True):
            family.add((tape,), tapes[tape].get(file, 0) * scale)
    return families


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    tapes = parse(sources)
    return build(tapes, options) if tapes else []


COLLECTOR = Collector("tapestats", (PREFIX + "st[0-9]*/stats/*",), collect, flags=(("ignored-devices", "^$"),))
