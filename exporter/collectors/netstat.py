"""node_exporter's netstat collector: /proc/net/{netstat,snmp,snmp6} fields matching ``fields``.

``node_netstat_<Protocol>_<Field>`` (untyped, as upstream), e.g. ``node_netstat_Tcp_RetransSegs``.
"""

from __future__ import annotations

from functools import lru_cache

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family

FIELDS = (
    "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|"
    "Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|"
    "CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)


def pairs(text: str) -> list[tuple[str, str, str]]:
    """/proc/net/netstat and snmp: (protocol, header line, values line) per protocol; each header
    line (``TcpExt: SyncookiesSent ...``) is followed by its values (``TcpExt: 0 ...``)."""
    lines = [line for line in text.split("\n") if line]
    if len(lines) % 2:
        raise ValueError("odd number of lines: a header without its values")
    out = []
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        protocol = names[: names.find(":")]
        if not protocol or not values.startswith(protocol + ":"):
            raise ValueError(f"values line does not follow the {protocol or names[:20]!r} header")
        out.append((protocol, names, values))
    return out


@lru_cache(maxsize=64)
def _snmp6_layout(keys: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...]:
    """/proc/net/snmp6's keys (``Ip6InReceives``...) grouped by protocol, which ends at the key's first
    ``6``: (protocol, field names, their positions among the values)."""
    groups: dict[str, tuple[list[str], list[int]]] = {}
    for index, key in enumerate(keys):
        six = key.find("6")
        if six > 0:
            names, indexes = groups.setdefault(key[: six + 1], ([], []))
            names.append(key[six + 1 :])
            indexes.append(index)
    return tuple((protocol, tuple(names), tuple(indexes)) for protocol, (names, indexes) in groups.items())


@lru_cache(maxsize=512)
def _chosen(pattern: str, protocol: str, names: tuple[str, ...]) -> tuple[tuple[int, str, str], ...]:
    """(index, family name, HELP) of the fields ``pattern`` selects (cached: headers repeat)."""
    keys = tuple(f"{protocol}_{name}" for name in names)
    options = CollectorOptions({"fields": pattern})
    return tuple(
        (index, f"node_netstat_{keys[index]}", f"Statistic {protocol}{names[index]}.")
        for index in options.selected("fields", keys)
    )


def _families(protocol: str, names: tuple[str, ...], values: list[str], options: CollectorOptions) -> list[Family]:
    families = []
    for index, name, help_text in _chosen(options.get("fields"), protocol, names):
        family = Family(name, "untyped", help_text)
        family.samples.append(((), float(values[index])))
        families.append(family)
    return families


@lru_cache(maxsize=256)
def _header(line: str) -> tuple[str, ...]:
    return tuple(line.split(" ")[1:])


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    families: list[Family] = []
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        for protocol, header, line in pairs(source(sources, path)):
            names, values = _header(header), line.split(" ")[1:]
            if len(names) != len(values):
                raise ValueError(f"field count mismatch for {protocol} in {path}")
            families += _families(protocol, names, values, options)
    fields = sources.get("/proc/net/snmp6", "").split()
    for protocol, names, indexes in _snmp6_layout(tuple(fields[0::2])):
        values = fields[1::2]
        families += _families(protocol, names, [values[i] for i in indexes], options)
    return families


COLLECTOR = Collector(
    name="netstat",
    paths=("/proc/net/netstat", "/proc/net/snmp", "/proc/net/snmp6"),
    collect=collect,
    flags=(("fields", FIELDS),),
)
