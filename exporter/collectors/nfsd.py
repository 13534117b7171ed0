"""nfsd: ``node_nfsd_*`` NFS server counters from /proc/net/rpc/nfsd (node_exporter's nfsd
collector, procfs' parser rules: known line keys only, fixed counts, ``th`` read for its first two
values). Only hosts that export NFS have the file. ``method`` values are procfs' field names; v2
and v3 without ``Null``, v4 the operations upstream lists, as node_exporter exports them.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.nfs import V2, V3, fixed, procedures
from optilab.exporter.family import Family

PATH = "/proc/net/rpc/nfsd"
#: proc4ops fields in the kernel's order (procfs' V4Ops), and the ones upstream exports
V4_OPS = (
    "Op0Unused",
    "Op1Unused",
    "Op2Future",
    "Access",
    "Close",
    "Commit",
    "Create",
    "DelegPurge",
    "DelegReturn",
    "GetAttr",
    "GetFH",
    "Link",
    "Lock",
    "Lockt",
    "Locku",
    "Lookup",
    "LookupRoot",
    "Nverify",
    "Open",
    "OpenAttr",
    "OpenConfirm",
    "OpenDgrd",
    "PutFH",
    "PutPubFH",
    "PutRootFH",
    "Read",
    "ReadDir",
    "ReadLink",
    "Remove",
    "Rename",
    "Renew",
    "RestoreFH",
    "SaveFH",
    "SecInfo",
    "SetAttr",
    "Verify",
    "Write",
    "RelLockOwner",
)
V4_EXPORTED = tuple(
    name for name in V4_OPS if name not in ("Op0Unused", "Op1Unused", "Op2Future", "PutPubFH", "PutRootFH")
)
_FIXED = {"rc": 3, "fh": 5, "io": 2, "th": 2, "ra": 12, "net": 4, "rpc": 5}


def parse(text: str) -> dict[str, object]:
    stats: dict[str, object] = {key: [0] * count for key, count in _FIXED.items()}
    stats.update({"proc2": dict.fromkeys(V2, 0), "proc3": dict.fromkeys(V3, 0), "proc4ops": dict.fromkeys(V4_OPS, 0)})
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or (parts[0] == "th" and len(parts) < 3):
            raise ValueError(f"invalid NFSd metric line {line[:60]!r}")
        key, raw = parts[0], parts[1:3] if parts[0] == "th" else parts[1:]
        if not all(value.isdigit() for value in raw):
            raise ValueError(f"error parsing NFSd metric line {line[:60]!r}")
        values = [int(value) for value in raw]
        if key in _FIXED:
            stats[key] = fixed(key, values, _FIXED[key])
        elif key == "proc2":
            stats[key] = procedures(key, values, V2, 18)
        elif key == "proc3":
            stats[key] = procedures(key, values, V3, 22)
        elif key == "proc4":
            if values[0] != 2 or len(values) != 3:
                raise ValueError(f"invalid V4Stats line {line[:60]!r}")
        elif key == "proc4ops":
            stats[key] = procedures(key, values, V4_OPS, 39)
        else:
            raise ValueError(f"unknown NFSd metric line {key!r}")
    return stats


def _ints(stats: dict[str, object], key: str) -> list[int]:
    values = stats[key]
    assert isinstance(values, list)
    return values


def _one(name: str, kind: str, help_text: str, value: int) -> Family:
    family = Family(name, kind, help_text)
    family.add((), value)
    return family


def build(stats: dict[str, object]) -> list[Family]:
    rc, fh, io, th, ra, net, rpc = (_ints(stats, key) for key in ("rc", "fh", "io", "th", "ra", "net", "rpc"))
    families = [
        _one(
            "node_nfsd_reply_cache_hits_total",
            "counter",
            "Total number of NFSd Reply Cache hits (client lost server response).",
            rc[0],
        ),
        _one(
            "node_nfsd_reply_cache_misses_total",
            "counter",
            "Total number of NFSd Reply Cache an operation that requires caching (idempotent).",
            rc[1],
        ),
        _one(
            "node_nfsd_reply_cache_nocache_total",
            "counter",
            "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/…).",
            rc[2],
        ),
        _one("node_nfsd_file_handles_stale_total", "counter", "Total number of NFSd stale file handles", fh[0]),
        _one("node_nfsd_disk_bytes_read_total", "counter", "Total NFSd bytes read.", io[0]),
        _one("node_nfsd_disk_bytes_written_total", "counter", "Total NFSd bytes written.", io[1]),
        _one("node_nfsd_server_threads", "gauge", "Total number of NFSd kernel threads that are running.", th[0]),
        _one("node_nfsd_read_ahead_cache_size_blocks", "gauge", "How large the read ahead cache is in blocks.", ra[0]),
        _one(
            "node_nfsd_read_ahead_cache_not_found_total",
            "counter",
            "Total number of NFSd read ahead cache not found.",
            ra[11],
        ),
    ]
    packets = Family(
        "node_nfsd_packets_total", "counter", "Total NFSd network packets (sent+received) by protocol type.", ("proto",)
    )
    packets.add(("udp",), net[1])
    packets.add(("tcp",), net[2])
    errors = Family(
        "node_nfsd_rpc_errors_total", "counter", "Total number of NFSd RPC errors by error type.", ("error",)
    )
    for label, index in (("fmt", 2), ("auth", 3), ("cInt", 4)):
        errors.add((label,), rpc[index])
    requests = Family(
        "node_nfsd_requests_total", "counter", "Total number NFSd Requests by method and protocol.", ("proto", "method")
    )
    for proto, key, names in (("2", "proc2", V2[1:]), ("3", "proc3", V3[1:]), ("4", "proc4ops", V4_EXPORTED)):
        counts = stats[key]
        assert isinstance(counts, dict)
        for name in names:
            requests.add((proto, name), counts.get(name, 0))
    families += [
        packets,
        _one("node_nfsd_connections_total", "counter", "Total number of NFSd TCP connections.", net[3]),
        errors,
        _one("node_nfsd_server_rpcs_total", "counter", "Total number of NFSd RPCs.", rpc[0]),
        requests,
    ]
    return families


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    text = sources.get(PATH)
    return [] if text is None else build(parse(text))


COLLECTOR = Collector("nfsd", (PATH,), collect)
