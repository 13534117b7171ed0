"""node_exporter's netstat collector: /proc/net/{netstat,snmp,snmp6} fields matching ``fields``.

``node_netstat_<Protocol>_<Field>`` (untyped, as upstream), e.g. ``node_netstat_Tcp_RetransSegs``.
"""

from __future__ import annotations

from exporter.collectors.base import Collector, CollectorOptions, Sources, source
from exporter.family import Family

FIELDS = (
    "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|"
    "Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|"
    "CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)


def parse_pairs(text: str) -> dict[str, dict[str, str]]:
    """/proc/net/netstat and snmp: a ``Proto: names`` line, then a ``Proto: values`` line, per protocol."""
    stats: dict[str, dict[str, str]] = {}
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) % 2:
        raise ValueError("odd number of lines: a header without its values")
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        name_parts, value_parts = names.split(" "), values.split(" ")
        protocol = name_parts[0][:-1]
        if len(name_parts) != len(value_parts) or value_parts[0][:-1] != protocol:
            raise ValueError(f"field count mismatch for {protocol}")
        stats[protocol] = dict(zip(name_parts[1:], value_parts[1:], strict=True))
    return stats


def parse_snmp6(text: str) -> dict[str, dict[str, str]]:
    """/proc/net/snmp6: ``Ip6InReceives  123`` lines; the protocol ends at its first ``6``."""
    stats: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and "6" in parts[0]:
            six = parts[0].index("6")
            stats.setdefault(parts[0][:six + 1], {})[parts[0][six + 1:]] = parts[1]
    return stats


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    stats = parse_pairs(source(sources, "/proc/net/netstat"))
    stats.update(parse_pairs(source(sources, "/proc/net/snmp")))
    stats.update(parse_snmp6(sources.get("/proc/net/snmp6", "")))
    wanted = options.regex("fields")
    families = []
    for protocol, fields in stats.items():
        for name, text in fields.items():
            key = f"{protocol}_{name}"
            if wanted is not None and not wanted.search(key):
                continue
            family = Family(f"node_netstat_{key}", "untyped", f"Statistic {protocol}{name}.")
            family.samples.append(((), float(text)))
            families.append(family)
    return families


COLLECTOR = Collector(name="netstat", paths=("/proc/net/netstat", "/proc/net/snmp", "/proc/net/snmp6"),
                      collect=collect, flags=(("fields", FIELDS),))
