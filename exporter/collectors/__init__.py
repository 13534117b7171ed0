"""Every collector the exporter knows, in one list; a department enables a subset (exporter/config.py).

One module per collector (``exporter/collectors/<name>.py``): a pure parser from text to data and a
builder from data to families, plus its :class:`~exporter.collectors.base.Collector` entry here.
"""

from __future__ import annotations

from exporter.collectors import bonding as _bonding  # col-sys
from exporter.collectors import cpufreq as _cpufreq  # col-sys
from exporter.collectors import dmi as _dmi  # col-sys
from exporter.collectors import edac as _edac  # col-sys
from exporter.collectors import hwmon as _hwmon  # col-sys
from exporter.collectors import mdadm as _mdadm  # col-sys
from exporter.collectors import netclass as _netclass  # col-sys
from exporter.collectors import nvme as _nvme  # col-sys
from exporter.collectors import powersupplyclass as _powersupplyclass  # col-sys
from exporter.collectors import rapl as _rapl  # col-sys
from exporter.collectors import selinux as _selinux  # col-sys
from exporter.collectors import systemd as _systemd  # col-sys
from exporter.collectors import thermal_zone as _thermal_zone  # col-sys
from exporter.collectors.base import Collector, CollectorOptions, Sources

COLLECTORS: list[Collector] = [
    _bonding.COLLECTOR,  # col-sys
    _cpufreq.COLLECTOR,  # col-sys
    _dmi.COLLECTOR,  # col-sys
    _edac.COLLECTOR,  # col-sys
    _hwmon.COLLECTOR,  # col-sys
    _mdadm.COLLECTOR,  # col-sys
    _netclass.COLLECTOR,  # col-sys
    _nvme.COLLECTOR,  # col-sys
    _powersupplyclass.COLLECTOR,  # col-sys
    _rapl.COLLECTOR,  # col-sys
    _selinux.COLLECTOR,  # col-sys
    _systemd.COLLECTOR,  # col-sys (slow tier)
    _thermal_zone.COLLECTOR,  # col-sys
]


def by_name() -> dict[str, Collector]:
    return {collector.name: collector for collector in COLLECTORS}


def default_enabled() -> list[Collector]:
    return [collector for collector in COLLECTORS if collector.default_enabled]


__all__ = ["COLLECTORS", "Collector", "CollectorOptions", "Sources", "by_name", "default_enabled"]
