"""Every collector the exporter knows, in one list, and the plan a department's settings make of them.

One module per collector (``exporter/collectors/<name>.py``): a pure parser from text to data and a
builder from data to families, plus its :class:`~exporter.collectors.base.Collector` entry, listed in
:data:`COLLECTORS`. A :class:`Plan` is what one probe of a department runs: the enabled collectors with
their options, and the one constant script they need (built once per distinct setting).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from optilab.exporter.collectors import (
    arp,
    bcache,
    bonding,
    btrfs,
    conntrack,
    cpu,
    cpufreq,
    diskstats,
    dmi,
    edac,
    entropy,
    fibrechannel,
    filefd,
    filesystem,
    hwmon,
    infiniband,
    interrupts,
    ipvs,
    lab,
    loadavg,
    mdadm,
    meminfo,
    netclass,
    netdev,
    netstat,
    nfs,
    nfsd,
    nvidia_gpu,
    nvme,
    powersupplyclass,
    pressure,
    processes,
    rapl,
    schedstat,
    seats,
    selinux,
    smartctl,
    sockstat,
    softnet,
    stat,
    systemd,
    tapestats,
    tcpstat,
    textfile,
    thermal_zone,
    time,
    timex,
    udp_queues,
    uname,
    vmstat,
    xfs,
    zfs,
)
from optilab.exporter.collectors import os as os_collector
from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.command import build_script, command_names, piped_name, split_sources

COLLECTORS: list[Collector] = [
    arp.COLLECTOR,
    bcache.COLLECTOR,
    bonding.COLLECTOR,
    btrfs.COLLECTOR,
    conntrack.COLLECTOR,
    cpu.COLLECTOR,
    cpufreq.COLLECTOR,
    diskstats.COLLECTOR,
    dmi.COLLECTOR,
    edac.COLLECTOR,
    entropy.COLLECTOR,
    fibrechannel.COLLECTOR,
    filefd.COLLECTOR,
    filesystem.COLLECTOR,
    hwmon.COLLECTOR,
    infiniband.COLLECTOR,
    interrupts.COLLECTOR,
    ipvs.COLLECTOR,
    loadavg.COLLECTOR,
    mdadm.COLLECTOR,
    meminfo.COLLECTOR,
    netclass.COLLECTOR,
    netdev.COLLECTOR,
    netstat.COLLECTOR,
    nfs.COLLECTOR,
    nfsd.COLLECTOR,
    nvidia_gpu.COLLECTOR,
    nvme.COLLECTOR,
    os_collector.COLLECTOR,
    powersupplyclass.COLLECTOR,
    pressure.COLLECTOR,
    processes.COLLECTOR,
    rapl.COLLECTOR,
    schedstat.COLLECTOR,
    selinux.COLLECTOR,
    smartctl.COLLECTOR,
    sockstat.COLLECTOR,
    softnet.COLLECTOR,
    stat.COLLECTOR,
    systemd.COLLECTOR,
    tapestats.COLLECTOR,
    tcpstat.COLLECTOR,
    textfile.COLLECTOR,
    thermal_zone.COLLECTOR,
    time.COLLECTOR,
    timex.COLLECTOR,
    udp_queues.COLLECTOR,
    uname.COLLECTOR,
    vmstat.COLLECTOR,
    xfs.COLLECTOR,
    zfs.COLLECTOR,
    lab.COLLECTOR,
    seats.COLLECTOR,
]


def by_name() -> dict[str, Collector]:
    return {collector.name: collector for collector in COLLECTORS}


def default_enabled() -> list[Collector]:
    return [collector for collector in COLLECTORS if collector.default_enabled]


@dataclass(frozen=True)
class Plan:
    """The collectors one probe runs, with options, and their script; ``slow`` is the plan of the
    slow-tier collectors (run on their own interval, served from cache in between), if any."""

    collectors: tuple[tuple[Collector, CollectorOptions], ...]
    script: str
    commands: tuple[str, ...]
    slow: Plan | None = None
    #: the command whose piped part head reads as its stdin (exporter/command.py), if any
    piped: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(collector.name for collector, _ in self.collectors)

    def split(self, output: str) -> tuple[dict[str, str], bool]:
        """This plan's script's ``output`` as sources, and whether it arrived whole (:func:`split_sources`)."""
        return split_sources(output, self.commands, self.piped)


def _freeze(options: Mapping[str, Mapping[str, str]]) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    return tuple(sorted((name, tuple(sorted(values.items()))) for name, values in options.items()))


def make_plan(enabled: Iterable[str] | None = None, options: Mapping[str, Mapping[str, str]] | None = None) -> Plan:
    """The plan for ``enabled`` collector names (default: node_exporter's defaults plus ``lab``) and
    ``options`` ({collector: {flag: value}}); unknown names are a ``ValueError`` naming them."""
    names = None if enabled is None else tuple(enabled)
    return _plan(names, _freeze(options or {}))


def _tier(pairs: list[tuple[Collector, CollectorOptions]], slow: Plan | None = None) -> Plan:
    collectors = [collector for collector, _ in pairs]
    return Plan(tuple(pairs), build_script(collectors), command_names(collectors), slow, piped_name(collectors))


@lru_cache(maxsize=64)
def _plan(names: tuple[str, ...] | None, options: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]) -> Plan:
    known = by_name()
    if names is None:
        chosen = default_enabled()
    else:
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ValueError(f"unknown collectors {unknown}; known: {sorted(known)}")
        chosen = [collector for collector in COLLECTORS if collector.name in names]
    values = dict(options)
    pairs: list[tuple[Collector, CollectorOptions]] = []
    for collector in chosen:
        collector_options = collector.options(dict(values.get(collector.name, ())))
        pairs.append((collector.planned(collector_options), collector_options))
    slow = [pair for pair in pairs if pair[0].tier == "slow"]
    return _tier([pair for pair in pairs if pair[0].tier == "fast"], _tier(slow) if slow else None)


#: restricted plans: (id of the plan, filter) -> (the plan itself, so its id stays its own, restricted)
_RESTRICTED: dict[tuple[int, frozenset[str]], tuple[Plan, Plan]] = {}
RESTRICTED_KEPT = 64


def restrict(plan: Plan, names: frozenset[str]) -> Plan:
    """``plan`` with only the collectors named in ``names`` (a ``/probe?collect[]=`` filter, as
    node_exporter's): the fast tier gets a script of its own that reads only what they read (the
    target pays for nothing else); the slow tier keeps its whole script, so its sources, cached per
    host (exporter/slowtier.py), stay the same for every filter and for none, and only its chosen
    collectors run on them. Built once per plan and filter; the last :data:`RESTRICTED_KEPT` are
    kept (a plan holds options that do not hash, so this is not an ``lru_cache``)."""
    key = (id(plan), names)
    kept = _RESTRICTED.get(key)
    if kept is not None and kept[0] is plan:
        return kept[1]
    fast = _tier([pair for pair in plan.collectors if pair[0].name in names])
    slow = plan.slow
    if slow is not None:
        chosen = tuple(pair for pair in slow.collectors if pair[0].name in names)
        slow = dataclasses.replace(slow, collectors=chosen) if chosen else None
    restricted = dataclasses.replace(fast, slow=slow)
    while len(_RESTRICTED) >= RESTRICTED_KEPT:
        del _RESTRICTED[next(iter(_RESTRICTED))]
    _RESTRICTED[key] = (plan, restricted)
    return restricted


__all__ = [
    "COLLECTORS",
    "Collector",
    "CollectorOptions",
    "Plan",
    "Sources",
    "by_name",
    "default_enabled",
    "make_plan",
    "restrict",
]
