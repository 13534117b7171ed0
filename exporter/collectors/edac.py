"""edac: ``node_edac_*`` memory error counters from /sys/devices/system/edac/mc/ (node_exporter's
edac). The controller-wide ``*_noinfo_count`` go to the csrow families as ``csrow="unknown"``."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices, uint
from optilab.exporter.family import Family

PREFIX = "/sys/devices/system/edac/mc/mc"
_FILES = ("ce_count", "ce_noinfo_count", "ue_count", "ue_noinfo_count")
_ROW_FILES = ("ce_count", "ue_count")


def parse(sources: Sources) -> dict[str, tuple[dict[str, int], dict[str, dict[str, int]]]]:
    """``{controller: ({file: count}, {csrow: {file: count}})}``; a missing count is an error."""
    controllers = {}
    found = devices(sources, PREFIX)
    if found and not any(controller.isdigit() for controller in found):
        raise ValueError("no memory controller mcN in the answer")
    for controller, attrs in found.items():
        if not controller.isdigit():
            continue
        counts: dict[str, int] = {}
        rows: dict[str, dict[str, int]] = {}
        for file in _FILES:
            value = uint(attrs.get(file, ""))
            if value is None:
                raise ValueError(f"couldn't get {file} for controller {controller}")
            counts[file] = value
        for attr, text in attrs.items():
            row, sep, file = attr.partition("/")
            if sep and row.startswith("csrow") and row[5:].isdigit() and file in _ROW_FILES:
                value = uint(text)
                if value is None:
                    raise ValueError(f"couldn't get {file} for controller/csrow {controller}/{row[5:]}")
                rows.setdefault(row[5:], {})[file] = value
        controllers[controller] = (counts, rows)
    return controllers


def build(controllers: dict[str, tuple[dict[str, int], dict[str, dict[str, int]]]]) -> list[Family]:
    ce = Family("node_edac_correctable_errors_total", "counter", "Total correctable memory errors.", ("controller",))
    ue = Family(
        "node_edac_uncorrectable_errors_total", "counter", "Total uncorrectable memory errors.", ("controller",)
    )
    row_ce = Family(
        "node_edac_csrow_correctable_errors_total",
        "counter",
        "Total correctable memory errors for this csrow.",
        ("controller", "csrow"),
    )
    row_ue = Family(
        "node_edac_csrow_uncorrectable_errors_total",
        "counter",
        "Total uncorrectable memory errors for this csrow.",
        ("controller", "csrow"),
    )
    for controller in sorted(controllers, key=int):
        counts, rows = controllers[controller]
        ce.add((controller,), counts["ce_count"])
        row_ce.add((controller, "unknown"), counts["ce_noinfo_count"])
        ue.add((controller,), counts["ue_count"])
        row_ue.add((controller, "unknown"), counts["ue_noinfo_count"])
        for row in sorted(rows, key=int):
            if "ce_count" in rows[row]:
                row_ce.add((controller, row), rows[row]["ce_count"])
            if "ue_count" in rows[row]:
                row_ue.add((controller, row), rows[row]["ue_count"])
    return [ce, ue, row_ce, row_ue]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    controllers = parse(sources)
    return build(controllers) if controllers else []


COLLECTOR = Collector(
    "edac",
    tuple(f"{PREFIX}[0-9]*/{file}" for file in _FILES) + tuple(f"{PREFIX}[0-9]*/csrow[0-9]*/{f}" for f in _ROW_FILES),
    collect,
)
