"""node_exporter's conntrack collector: table size and limit, and the per-CPU statistics summed."""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family, gauge

NETFILTER = "/proc/sys/net/netfilter/"
STAT = "/proc/net/stat/nf_conntrack"
_STATS = (
    ("found", "Number of searched entries which were successful."),
    ("invalid", "Number of packets seen which can not be tracked."),
    ("ignore", "Number of packets seen which are already connected to a conntrack entry."),
    ("insert", "Number of entries inserted into the list."),
    ("insert_failed", "Number of entries for which list insertion was attempted but failed."),
    ("drop", "Number of packets dropped due to conntrack failure."),
    ("early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."),
    ("search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."),
)


def parse_stat(text: str) -> dict[str, int]:
    """Column sums of /proc/net/stat/nf_conntrack (hex, one row per CPU, named by its header)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("empty nf_conntrack statistics")
    header, rows = lines[0], lines[1:]
    totals = dict.fromkeys(header, 0)
    for row in rows:
        if len(row) != len(header):
            raise ValueError("nf_conntrack statistics row does not match its header")
        for name, value in zip(header, row, strict=True):
            totals[name] += int(value, 16)
    return totals


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    if NETFILTER + "nf_conntrack_count" not in sources:
        return []  # conntrack module not loaded
    families = [
        gauge(
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            int(source(sources, NETFILTER + "nf_conntrack_count")),
        ),
        gauge(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            int(source(sources, NETFILTER + "nf_conntrack_max")),
        ),
    ]
    stats = parse_stat(source(sources, STAT))
    families += [
        gauge(f"node_nf_conntrack_stat_{name}", help_text, stats[name]) for name, help_text in _STATS if name in stats
    ]
    return families


COLLECTOR = Collector(
    name="conntrack", paths=(NETFILTER + "nf_conntrack_count", NETFILTER + "nf_conntrack_max", STAT), collect=collect
)
