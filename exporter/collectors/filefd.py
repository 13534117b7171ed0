"""node_exporter's filefd collector: allocated and maximum file handles from /proc/sys/fs/file-nr."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family, gauge
from optilab.exporter.parsers_proc import parse_filefd


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    filefd = parse_filefd(source(sources, "/proc/sys/fs/file-nr"))
    return [
        gauge("node_filefd_allocated", "File descriptor statistics: allocated.", filefd.allocated),
        gauge("node_filefd_maximum", "File descriptor statistics: maximum.", filefd.maximum),
    ]


COLLECTOR = Collector(name="filefd", paths=("/proc/sys/fs/file-nr",), collect=collect)
