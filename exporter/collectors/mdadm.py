"""mdadm: ``node_md_*`` from /proc/mdstat (node_exporter 1.5's mdadm collector, procfs' parser rules).

A host without md has no /proc/mdstat (module not loaded) or one with only ``Personalities`` and
``unused devices`` lines: both give no families.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family

PATH = "/proc/mdstat"
_STATUS = re.compile(r"(\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]")
_RECOVERY_BLOCKS = re.compile(r"\((\d+)/\d+\)")


@dataclass(frozen=True)
class MdStat:
    name: str
    state: str  # active, inactive, recovering, resyncing, checking (or what the kernel printed)
    disks_active: int
    disks_total: int
    disks_failed: int
    disks_spare: int
    blocks_total: int
    blocks_synced: int


def _status(device_line: str, status_line: str) -> tuple[int, int, int]:
    """(active, total, size) from a device line and the status line after it."""
    fields = status_line.split()
    if not fields or not fields[0].isdigit():
        raise ValueError(f"unexpected statusLine {status_line!r}")
    size = int(fields[0])
    if "raid0" in device_line or "linear" in device_line:
        total = device_line.count("[")
        return total, total, size
    if "inactive" in device_line:
        return 0, 0, size
    match = _STATUS.search(status_line)
    if match is None:
        raise ValueError(f"couldn't find all the substring matches: {status_line}")
    return int(match.group(3)), int(match.group(2)), size


def parse(text: str) -> list[MdStat]:
    lines = text.split("\n")
    arrays = []
    for i, line in enumerate(lines):
        if not line.strip() or line[0] == " " or line.startswith(("Personalities", "unused")):
            continue
        fields = line.split()
        if len(fields) < 3:
            raise ValueError(f"not enough fields in mdline (expected at least 3): {line}")
        name, state = fields[0], fields[2]
        if len(lines) <= i + 3:
            raise ValueError(f"too few lines for md device {name}")
        active, total, size = _status(line, lines[i + 1])
        sync_line = lines[i + 3] if "bitmap" in lines[i + 2] else lines[i + 2]
        synced = size
        recovering, resyncing, checking = ("recovery" in sync_line, "resync" in sync_line, "check" in sync_line)
        if recovering or resyncing or checking:
            state = "recovering" if recovering else "checking" if checking else "resyncing"
            if "PENDING" in sync_line or "DELAYED" in sync_line:
                synced = 0
            else:
                match = _RECOVERY_BLOCKS.search(sync_line)
                if match is None:
                    raise ValueError(f"unexpected recoveryLine: {sync_line}")
                synced = int(match.group(1))
        arrays.append(MdStat(name, state, active, total, line.count("(F)"), line.count("(S)"), size, synced))
    return arrays


def build(arrays: list[MdStat]) -> list[Family]:
    required = Family("node_md_disks_required", "gauge", "Total number of disks of device.", ("device",))
    disks = Family("node_md_disks", "gauge", "Number of active/failed/spare disks of device.", ("device", "state"))
    state = Family("node_md_state", "gauge", "Indicates the state of md-device.", ("device", "state"))
    blocks = Family("node_md_blocks", "gauge", "Total number of blocks on device.", ("device",))
    synced = Family("node_md_blocks_synced", "gauge", "Number of blocks synced on device.", ("device",))
    for md in arrays:
        required.add((md.name,), md.disks_total)
        disks.add((md.name, "active"), md.disks_active)
        disks.add((md.name, "failed"), md.disks_failed)
        disks.add((md.name, "spare"), md.disks_spare)
        for label, kernel in (
            ("active", "active"),
            ("inactive", "inactive"),
            ("recovering", "recovering"),
            ("resync", "resyncing"),
            ("check", "checking"),
        ):
            state.add((md.name, label), 1.0 if md.state == kernel else 0.0)
        blocks.add((md.name,), md.blocks_total)
        synced.add((md.name,), md.blocks_synced)
    return [required, disks, state, blocks, synced]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    text = sources.get(PATH)
    if text is None:
        return []
    arrays = parse(text)
    return build(arrays) if arrays else []


COLLECTOR = Collector("mdadm", (PATH,), collect)
