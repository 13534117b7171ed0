"""xfs: ``node_xfs_*`` counters per XFS filesystem from /sys/fs/xfs/<device>/stats/stats
(node_exporter's xfs collector; procfs' parser rules: every line of two or more fields holds
unsigned 32-bit numbers, ``xpc`` 64-bit ones, and each known line has its fixed count of values, or
the whole file is rejected). The machine-wide /sys/fs/xfs/stats/stats (and /proc/fs/xfs/stat) are
not per device and not exported, as upstream.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, matching, under
from optilab.exporter.family import Family

PREFIX, SUFFIX = "/sys/fs/xfs/", "/stats/stats"
#: values per known line (procfs): a line with another count makes the file unusable
_LENGTHS: dict[str, tuple[int, ...]] = {
    "extent_alloc": (4,),
    "abt": (4,),
    "blk_map": (7,),
    "bmbt": (4,),
    "dir": (4,),
    "trans": (3,),
    "ig": (7,),
    "log": (5,),
    "push_ail": (10,),
    "xstrat": (2,),
    "rw": (2,),
    "attr": (4,),
    "icluster": (3,),
    "vnodes": (7, 8),
    "buf": (9,),
    "xpc": (3,),
    "abtb2": (15,),
    "abtc2": (15,),
    "bmbt2": (15,),
    "ibt2": (15,),
    "qm": (8, 9),
    "debug": (1,),
}
_U32 = (1 << 32) - 1
#: (metric suffix, line, position, HELP) in upstream's order
METRICS = (
    ("extent_allocation_extents_allocated_total", "extent_alloc", 0, "Number of extents allocated for a filesystem."),
    ("extent_allocation_blocks_allocated_total", "extent_alloc", 1, "Number of blocks allocated for a filesystem."),
    ("extent_allocation_extents_freed_total", "extent_alloc", 2, "Number of extents freed for a filesystem."),
    ("extent_allocation_blocks_freed_total", "extent_alloc", 3, "Number of blocks freed for a filesystem."),
    ("allocation_btree_lookups_total", "abt", 0, "Number of allocation B-tree lookups for a filesystem."),
    ("allocation_btree_compares_total", "abt", 1, "Number of allocation B-tree compares for a filesystem."),
    (
        "allocation_btree_records_inserted_total",
        "abt",
        2,
        "Number of allocation B-tree records inserted for a filesystem.",
    ),
    (
        "allocation_btree_records_deleted_total",
        "abt",
        3,
        "Number of allocation B-tree records deleted for a filesystem.",
    ),
    ("block_mapping_reads_total", "blk_map", 0, "Number of block map for read operations for a filesystem."),
    ("block_mapping_writes_total", "blk_map", 1, "Number of block map for write operations for a filesystem."),
    ("block_mapping_unmaps_total", "blk_map", 2, "Number of block unmaps (deletes) for a filesystem."),
    ("block_mapping_extent_list_insertions_total", "blk_map", 3, "Number of extent list insertions for a filesystem."),
    ("block_mapping_extent_list_deletions_total", "blk_map", 4, "Number of extent list deletions for a filesystem."),
    ("block_mapping_extent_list_lookups_total", "blk_map", 5, "Number of extent list lookups for a filesystem."),
    ("block_mapping_extent_list_compares_total", "blk_map", 6, "Number of extent list compares for a filesystem."),
    ("block_map_btree_lookups_total", "bmbt", 0, "Number of block map B-tree lookups for a filesystem."),
    ("block_map_btree_compares_total", "bmbt", 1, "Number of block map B-tree compares for a filesystem."),
    (
        "block_map_btree_records_inserted_total",
        "bmbt",
        2,
        "Number of block map B-tree records inserted for a filesystem.",
    ),
    (
        "block_map_btree_records_deleted_total",
        "bmbt",
        3,
        "Number of block map B-tree records deleted for a filesystem.",
    ),
    (
        "directory_operation_lookup_total",
        "dir",
        0,
        "Number of file name directory lookups which miss the operating systems directory name lookup cache.",
    ),
    (
        "directory_operation_create_total",
        "dir",
        1,
        "Number of times a new directory entry was created for a filesystem.",
    ),
    (
        "directory_operation_remove_total",
        "dir",
        2,
        "Number of times an existing directory entry was created for a filesystem.",
    ),
    (
        "directory_operation_getdents_total",
        "dir",
        3,
        "Number of times the directory getdents operation was performed for a filesystem.",
    ),
    ("inode_operation_attempts_total", "ig", 0, "Number of times the OS looked for an XFS inode in the inode cache."),
    (
        "inode_operation_found_total",
        "ig",
        1,
        "Number of times the OS looked for and found an XFS inode in the inode cache.",
    ),
    (
        "inode_operation_recycled_total",
        "ig",
        2,
        "Number of times the OS found an XFS inode in the cache, but could not use it as it was being recycled.",
    ),
    (
        "inode_operation_missed_total",
        "ig",
        3,
        "Number of times the OS looked for an XFS inode in the cache, but did not find it.",
    ),
    (
        "inode_operation_duplicates_total",
        "ig",
        4,
        "Number of times the OS tried to add a missing XFS inode to the inode cache, but found it had already been "
        "added by another process.",
    ),
    (
        "inode_operation_reclaims_total",
        "ig",
        5,
        "Number of times the OS reclaimed an XFS inode from the inode cache to free memory for another purpose.",
    ),
    (
        "inode_operation_attribute_changes_total",
        "ig",
        6,
        "Number of times the OS explicitly changed the attributes of an XFS inode.",
    ),
    ("read_calls_total", "rw", 1, "Number of read(2) system calls made to files in a filesystem."),
    ("write_calls_total", "rw", 0, "Number of write(2) system calls made to files in a filesystem."),
    ("vnode_active_total", "vnodes", 0, "Number of vnodes not on free lists for a filesystem."),
    ("vnode_allocate_total", "vnodes", 1, "Number of times vn_alloc called for a filesystem."),
    ("vnode_get_total", "vnodes", 2, "Number of times vn_get called for a filesystem."),
    ("vnode_hold_total", "vnodes", 3, "Number of times vn_hold called for a filesystem."),
    ("vnode_release_total", "vnodes", 4, "Number of times vn_rele called for a filesystem."),
    ("vnode_reclaim_total", "vnodes", 5, "Number of times vn_reclaim called for a filesystem."),
    ("vnode_remove_total", "vnodes", 6, "Number of times vn_remove called for a filesystem."),
)


def parse(text: str) -> dict[str, list[int]]:
    """``{line label: values}`` of one stats file; ``ValueError`` where procfs would fail."""
    lines: dict[str, list[int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        label, raw = fields[0], fields[1:]
        if not "".join(raw).isdigit():
            raise ValueError(f"xfs stats line {label!r}: not unsigned numbers")
        values = list(map(int, raw))
        if label != "xpc" and max(values) > _U32:
            raise ValueError(f"xfs stats line {label!r}: value out of uint32 range")
        if label in _LENGTHS and len(values) not in _LENGTHS[label]:
            raise ValueError(f"incorrect number of values for XFS {label} stats: {len(values)}")
        lines[label] = values
    if "extent_alloc" not in lines:  # the kernel's first line, in every version
        raise ValueError("no extent_alloc line: not an XFS stats file")
    return lines


def build(devices: dict[str, dict[str, list[int]]]) -> list[Family]:
    families = []
    for suffix, line, position, help_text in METRICS:
        family = Family(f"node_xfs_{suffix}", "counter", help_text, ("device",))
        for device in sorted(devices):
            values = devices[device].get(line)
            family.add((device,), values[position] if values else 0)  # upstream: zero when the line is absent
        families.append(family)
    return families


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    devices = {
        device: parse(text)
        for device, text in matching(under(sources, PREFIX), PREFIX, SUFFIX).items()
        if "/" not in device
    }
    return build(devices) if devices else []


COLLECTOR = Collector("xfs", (PREFIX + "*" + SUFFIX,), collect)
