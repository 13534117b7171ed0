"""nvidia_gpu (slow tier): NVIDIA GPUs from ``nvidia-smi --query-gpu``, under nvidia_gpu_exporter's names.

Why those names and not DCGM exporter's: nvidia_gpu_exporter reads the very same ``nvidia-smi``
query, so its names, units and HELP texts mean exactly what this collector reads; DCGM exporter
needs NVIDIA's DCGM host engine (datacenter GPUs, rarely on a lab's GeForce or Quadro cards) and
its ``DCGM_FI_DEV_*`` fields are DCGM's own samples, not nvidia-smi's. Its Grafana dashboards
(e.g. 14574) then work unchanged.

The rules, as nvidia_gpu_exporter applies them to each column of ``--format=csv``: the metric is
``nvidia_smi_`` + the returned header with ``.`` as ``_``; a ``[%]`` column becomes ``_ratio`` (×0.01),
``[MiB]`` ``_bytes`` (×2^20), ``[MHz]`` ``_clock_hz`` (×10^6), ``[W]`` ``_watts``; HELP is the header;
all are gauges labelled ``uuid`` (lower case, without ``GPU-``); ``Enabled``/``Yes``/``Active`` are 1,
``Disabled``/``No``/``Not Active``/``Default`` 0, hex values decimal, otherwise the one number in the
cell (``P8`` -> 8); ``[N/A]`` and ``[Not Supported]`` give no sample. ``nvidia_smi_gpu_info`` carries
the text columns. A host without nvidia-smi has no such command (status 127) and no families; the
query is a constant (upstream's default queries every field nvidia-smi knows; this one the fields
a lab uses).
"""

from __future__ import annotations

import csv
import re

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family

SOURCE = "cmd:nvidia_smi"
INFO = ("uuid", "name", "driver_model.current", "driver_model.pending", "vbios_version", "driver_version")
INFO_LABELS = ("uuid", "name", "driver_model_current", "driver_model_pending", "vbios_version", "driver_version")
FIELDS = (
    *INFO,
    "index",
    "pci.bus_id",
    "temperature.gpu",
    "temperature.memory",
    "utilization.gpu",
    "utilization.memory",
    "memory.total",
    "memory.used",
    "memory.free",
    "fan.speed",
    "power.draw",
    "power.limit",
    "clocks.current.graphics",
    "clocks.current.sm",
    "clocks.current.memory",
    "clocks.max.graphics",
    "pstate",
    "encoder.stats.sessionCount",
)
COMMAND = f"nvidia-smi --query-gpu={','.join(FIELDS)} --format=csv"
_NUMBER = re.compile(r"[+-]?(\d*[.])?\d+")
_WORDS = {
    "enabled": 1.0,
    "yes": 1.0,
    "active": 1.0,
    "disabled": 0.0,
    "no": 0.0,
    "not active": 0.0,
    "default": 0.0,
    "exclusive_thread": 1.0,
    "prohibited": 2.0,
    "exclusive_process": 3.0,
}
_UNITS = (
    (" [W]", "_watts", 1.0),
    (" [MHz]", "_clock_hz", 1e6),
    (" [MiB]", "_bytes", 1048576.0),
    (" [%]", "_ratio", 0.01),
)


def metric_name(header: str) -> tuple[str, float]:
    """nvidia_gpu_exporter's name and multiplier for one returned column header."""
    suffix, multiplier = header, 1.0
    for unit, replacement, factor in _UNITS:
        if header.endswith(unit):
            suffix, multiplier = header.split(" ")[0] + replacement, factor
            break
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", suffix.replace(".", "_")).lower()
    return f"nvidia_smi_{snake}", multiplier


def value(raw: str, multiplier: float) -> float | None:
    text = raw.strip()
    if text.startswith("0x"):
        try:
            return float(int(text, 16))
        except ValueError:
            return None
    lowered = text.lower()
    if lowered in _WORDS:
        return _WORDS[lowered]
    numbers = [match.group(0) for match in _NUMBER.finditer(lowered)][:2]
    return float(numbers[0]) * multiplier if len(numbers) == 1 else None


def parse(text: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of nvidia-smi's CSV; ``ValueError`` unless every row has every column."""
    rows = [[cell.strip() for cell in row] for row in csv.reader(text.strip().splitlines(), skipinitialspace=True)]
    if not rows or len(rows[0]) != len(FIELDS):
        raise ValueError(f"nvidia-smi answered {len(rows[0]) if rows else 0} columns, {len(FIELDS)} asked")
    headers, body = rows[0], rows[1:]
    if any(len(row) != len(headers) for row in body):
        raise ValueError("nvidia-smi row with a different number of columns")
    return headers, body


def build(headers: list[str], rows: list[list[str]]) -> list[Family]:
    info = Family(
        "nvidia_smi_gpu_info",
        "gauge",
        "A metric with a constant '1' value labeled by gpu " + ", ".join(INFO_LABELS) + ".",
        INFO_LABELS,
    )
    families: dict[str, Family] = {}
    for row in rows:
        cells = dict(zip(FIELDS, row, strict=True))
        uuid = cells["uuid"].lower().removeprefix("gpu-")
        info.add((uuid, *(cells[field] for field in INFO[1:])), 1.0)
        for header, raw in zip(headers, row, strict=True):
            name, multiplier = metric_name(header)
            number = value(raw, multiplier)
            if number is None:
                continue
            families.setdefault(name, Family(name, "gauge", header, ("uuid",))).add((uuid,), number)
    return [info, *families.values()]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    text = sources.get(SOURCE)
    if text is None:
        return []  # no nvidia-smi on this host
    return build(*parse(text))


COLLECTOR = Collector("nvidia_gpu", (), collect, commands=(("nvidia_smi", COMMAND),), tier="slow")
