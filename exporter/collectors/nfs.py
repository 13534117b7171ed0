"""nfs: ``node_nfs_*`` NFS client counters from /proc/net/rpc/nfs (node_exporter's nfs collector,
procfs' parser rules: every line ``<key> <unsigned numbers>``, known keys only, fixed counts; a
``procN`` line starts with its number of values). A host without the nfs module has no such file
and no families. ``method`` values are procfs' field names, as upstream exports them.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family

PATH = "/proc/net/rpc/nfs"
V2 = (
    "Null",
    "GetAttr",
    "SetAttr",
    "Root",
    "Lookup",
    "ReadLink",
    "Read",
    "WrCache",
    "Write",
    "Create",
    "Remove",
    "Rename",
    "Link",
    "SymLink",
    "MkDir",
    "RmDir",
    "ReadDir",
    "FsStat",
)
V3 = (
    "Null",
    "GetAttr",
    "SetAttr",
    "Lookup",
    "Access",
    "ReadLink",
    "Read",
    "Write",
    "Create",
    "MkDir",
    "SymLink",
    "MkNod",
    "Remove",
    "RmDir",
    "Rename",
    "Link",
    "ReadDir",
    "ReadDirPlus",
    "FsStat",
    "FsInfo",
    "PathConf",
    "Commit",
)
V4 = (
    "Null",
    "Read",
    "Write",
    "Commit",
    "Open",
    "OpenConfirm",
    "OpenNoattr",
    "OpenDowngrade",
    "Close",
    "Setattr",
    "FsInfo",
    "Renew",
    "SetClientID",
    "SetClientIDConfirm",
    "Lock",
    "Lockt",
    "Locku",
    "Access",
    "Getattr",
    "Lookup",
    "LookupRoot",
    "Remove",
    "Rename",
    "Link",
    "Symlink",
    "Create",
    "Pathconf",
    "StatFs",
    "ReadLink",
    "ReadDir",
    "ServerCaps",
    "DelegReturn",
    "GetACL",
    "SetACL",
    "FsLocations",
    "ReleaseLockowner",
    "Secinfo",
    "FsidPresent",
    "ExchangeID",
    "CreateSession",
    "DestroySession",
    "Sequence",
    "GetLeaseTime",
    "ReclaimComplete",
    "LayoutGet",
    "GetDeviceInfo",
    "LayoutCommit",
    "LayoutReturn",
    "SecinfoNoName",
    "TestStateID",
    "FreeStateID",
    "GetDeviceList",
    "BindConnToSession",
    "DestroyClientID",
    "Seek",
    "Allocate",
    "DeAllocate",
    "LayoutStats",
    "Clone",
)


def numbers(line: str) -> tuple[str, list[int]]:
    """``key v1 v2 ...`` -> (key, values); ``ValueError`` unless at least one unsigned value follows."""
    parts = line.split()
    if len(parts) < 2 or not all(part.isdigit() for part in parts[1:]):
        raise ValueError(f"invalid NFS metric line {line[:60]!r}")
    return parts[0], [int(part) for part in parts[1:]]


def procedures(
    key: str, values: list[int], names: tuple[str, ...], minimum: int | None, pad: bool = False
) -> dict[str, int]:
    """A ``procN`` line (first value: how many follow) as ``{method: count}``."""
    count, rest = values[0], values[1:]
    if len(rest) != count or (minimum is not None and count < minimum):
        raise ValueError(f"invalid {key} line: {count} values announced, {len(rest)} given")
    if pad:
        rest = rest + [0] * (len(names) - len(rest))
    return dict(zip(names, rest, strict=False))


def fixed(key: str, values: list[int], count: int) -> list[int]:
    if len(values) != count:
        raise ValueError(f"invalid {key} line: {len(values)} values, {count} expected")
    return values


def parse(text: str) -> dict[str, object]:
    stats: dict[str, object] = {
        "net": [0, 0, 0, 0],
        "rpc": [0, 0, 0],
        "proc2": dict.fromkeys(V2, 0),
        "proc3": dict.fromkeys(V3, 0),
        "proc4": dict.fromkeys(V4, 0),
    }
    for line in text.splitlines():
        key, values = numbers(line)
        if key == "net":
            stats[key] = fixed(key, values, 4)
        elif key == "rpc":
            stats[key] = fixed(key, values, 3)
        elif key == "proc2":
            stats[key] = procedures(key, values, V2, 18)
        elif key == "proc3":
            stats[key] = procedures(key, values, V3, 22)
        elif key == "proc4":
            stats[key] = procedures(key, values, V4, None, pad=True)
        else:
            raise ValueError(f"unknown NFS metric line {key!r}")
    return stats


def build(stats: dict[str, object]) -> list[Family]:
    net, rpc = stats["net"], stats["rpc"]
    assert isinstance(net, list) and isinstance(rpc, list)
    packets = Family(
        "node_nfs_packets_total",
        "counter",
        "Total NFSd network packets (sent+received) by protocol type.",
        ("protocol",),
    )
    packets.add(("udp",), net[1])
    packets.add(("tcp",), net[2])
    connections = Family("node_nfs_connections_total", "counter", "Total number of NFSd TCP connections.")
    connections.add((), net[3])
    rpcs = Family("node_nfs_rpcs_total", "counter", "Total number of RPCs performed.")
    rpcs.add((), rpc[0])
    retrans = Family("node_nfs_rpc_retransmissions_total", "counter", "Number of RPC transmissions performed.")
    retrans.add((), rpc[1])
    refreshes = Family(
        "node_nfs_rpc_authentication_refreshes_total", "counter", "Number of RPC authentication refreshes performed."
    )
    refreshes.add((), rpc[2])
    requests = Family("node_nfs_requests_total", "counter", "Number of NFS procedures invoked.", ("proto", "method"))
    for proto, key, names in (("2", "proc2", V2), ("3", "proc3", V3), ("4", "proc4", V4)):
        counts = stats[key]
        assert isinstance(counts, dict)
        for name in names:
            requests.add((proto, name), counts.get(name, 0))
    return [packets, connections, rpcs, retrans, refreshes, requests]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    text = sources.get(PATH)
    return [] if text is None else build(parse(text))


COLLECTOR = Collector("nfs", (PATH,), collect)
