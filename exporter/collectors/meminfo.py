"""node_exporter's meminfo collector: every /proc/meminfo field as ``node_memory_<Field>[_bytes]``."""

from __future__ import annotations

import re
from functools import lru_cache

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family, gauge
from optilab.exporter.parsers_proc import Meminfo, parse_meminfo_cached


@lru_cache(maxsize=1024)
def memory_name(field: str, unit: str) -> tuple[str, str]:
    """Name and HELP of one field: ``Active(anon)`` -> ``node_memory_Active_anon_bytes``. Cached:
    every host repeats the same few dozen fields on every scrape."""
    key = re.sub(r"\((.*)\)", r"_\1", field) + unit
    return f"node_memory_{key}", f"Memory information field {key}."


def meminfo_families(meminfo: Meminfo) -> list[Family]:
    families = [gauge(*memory_name(field, "_bytes"), value) for field, value in meminfo.bytes.items()]
    families += [gauge(*memory_name(field, ""), value) for field, value in meminfo.counts.items()]
    return families


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    return meminfo_families(parse_meminfo_cached(source(sources, "/proc/meminfo")))


COLLECTOR = Collector(name="meminfo", paths=("/proc/meminfo",), collect=collect)
