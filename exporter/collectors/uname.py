"""node_exporter's uname collector, from the kernel's own files instead of the uname(2) syscall.

/proc/sys/kernel/{ostype,hostname,osrelease,version,domainname} hold exactly what uname(2) returns;
``machine`` is /proc/sys/kernel/arch (Linux 6.1+), and only where that file is missing does the
target run ``uname -m`` (a builtin test decides, so newer kernels pay no process for it). An unset
NIS domain reads ``(none)``, as node_exporter reports it.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family

KERNEL = "/proc/sys/kernel/"
FIELDS = (
    ("sysname", "ostype"),
    ("release", "osrelease"),
    ("version", "version"),
    ("machine", "arch"),
    ("nodename", "hostname"),
    ("domainname", "domainname"),
)


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    values = []
    for label, name in FIELDS:
        if name == "arch" and KERNEL + name not in sources:
            text = sources.get("cmd:machine", "")
        else:
            text = source(sources, KERNEL + name)
        value = text.strip("\n")
        if not value:
            raise ValueError(f"no {label} (from {KERNEL}{name})")
        values.append(value)
    if values[0] != "Linux" or "\n" in "".join(values):
        raise ValueError(f"not a Linux kernel's uname: sysname {values[0][:40]!r}")
    family = Family(
        "node_uname_info",
        "gauge",
        "Labeled system information as provided by the uname system call.",
        tuple(label for label, _ in FIELDS),
    )
    family.add(values, 1.0)
    return [family]


COLLECTOR = Collector(
    name="uname",
    paths=tuple(KERNEL + name for _, name in FIELDS),
    commands=(("machine", f"[ -r {KERNEL}arch ] || uname -m"),),
    collect=collect,
)
