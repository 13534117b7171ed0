"""node_exporter's filesystem collector: statfs() of every mount point, from ``stat -f`` on the target.

The mount table is ``/proc/1/mounts`` (what node_exporter reads); the target's shell passes each mount
point of it to one ``stat -f`` as an argument (data, never code), skipping pseudo filesystems whose
statfs is never wanted (and autofs, whose statfs would trigger a mount). The mount points are listed
with the readable files (:data:`MOUNT_LISTING`, exporter/command.py): a long-lived shell lists them
once every few scrapes and stats the kept list every scrape; a mount that appeared since has no
series until the next listing (its first scrape at most ten scrapes late), one that went away is not
served (only the mounts of this scrape's ``/proc/1/mounts`` are). Upstream's default
``mount-points-exclude`` and ``fs-types-exclude`` then apply here, like node_exporter's flags. A mount
that stat could not read gets ``node_filesystem_device_error 1`` and no other series, as upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family

MOUNTS = "/proc/1/mounts"
MOUNT_POINTS_EXCLUDE = "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
FS_TYPES_EXCLUDE = (
    "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue"
    "|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$"
)
#: never stat'ed on the target, whatever the flags say (kernel pseudo filesystems; autofs mounts on access)
NOT_STATED = (
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "fusectl",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sysfs",
    "tracefs",
)
#: The mount points to stat, a listing (exporter/command.py): made with the list of readable files,
#: so a long-lived shell reads /proc/1/mounts byte by byte once every few calls, not every scrape.
MOUNT_LISTING = (
    "while read -r d m t r; do case $t in " + "|".join(NOT_STATED) + ") continue;; esac; "
    "case $m in *\\\\*) m=$(printf '%b' \"$m\");; esac; case $m in *'\n'*) continue;; esac; "
    'l="$l$m\n"; done < ' + MOUNTS
)
LISTINGS = (("mounts", MOUNT_LISTING),)
#: ``? <mount point>`` for each one tried (builtins, after head), then stat's lines: ``stat -f`` is
#: the command's piped part, which runs while head reads the files (exporter/command.py) and whose
#: output the splitter appends. ``%n`` last: a mount point may contain spaces. ``%s`` is f_bsize,
#: which node_exporter multiplies by. The mount points are stat's arguments (data, never code).
STATFS = "set -f; IFS='\n'; set -- $listed_mounts; unset IFS; set +f; [ $# -eq 0 ] || printf '? %s\\n' \"$@\""
STATFS_PIPED = "set -f; IFS='\n'; exec stat -f -c '%b %f %a %s %c %d %n' -- $listed_mounts"


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str
    options: str


@dataclass(frozen=True)
class Statfs:
    blocks: int
    free: int
    avail: int
    bsize: int
    files: int
    files_free: int


def _unescape(text: str) -> str:
    """The kernel's octal escapes in /proc/mounts (``\\040`` space, ``\\011`` tab, ``\\012``, ``\\134``)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 3 < len(text) and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mounts(text: str) -> list[Mount]:
    """/proc/mounts lines; node_exporter unescapes only ``\\040`` and ``\\011`` in the mount point."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4:
            raise ValueError(f"malformed mount line: {line!r}")
        mountpoint = parts[1].replace("\\040", " ").replace("\\011", "\t")
        mounts.append(Mount(parts[0], mountpoint, parts[2], parts[3]))
    return mounts


@lru_cache(maxsize=64)
def parse_statfs(text: str) -> dict[str, Statfs]:
    """``stat -f -c '%b %f %a %s %c %d %n'`` lines -> {mount point: numbers} (``? `` lines skipped)."""
    stats = {}
    for line in text.splitlines():
        if not line or line.startswith("? "):
            continue
        parts = line.split(" ", 6)
        if len(parts) != 7:
            raise ValueError(f"malformed stat -f line: {line!r}")
        blocks, free, avail, bsize, files, files_free = (int(v) for v in parts[:6])
        stats[parts[6]] = Statfs(blocks, free, avail, bsize, files, files_free)
    return stats


def statfs_tried(text: str) -> frozenset[str] | None:
    """The mount points the section tried (its ``? `` lines); None when it names none (an answer of a
    simulator, or a capture from before the list was kept): then every mount counts as tried."""
    tried = frozenset(line[2:] for line in text.splitlines() if line.startswith("? "))
    return tried or None


_GAUGES = (
    ("node_filesystem_size_bytes", "Filesystem size in bytes."),
    ("node_filesystem_free_bytes", "Filesystem free space in bytes."),
    ("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."),
    ("node_filesystem_files", "Filesystem total file nodes."),
    ("node_filesystem_files_free", "Filesystem total free file nodes."),
    ("node_filesystem_readonly", "Filesystem read-only status."),
)
LABELS = ("device", "fstype", "mountpoint")


def filesystem_families(
    mounts: list[Mount], stats: dict[str, Statfs], options: CollectorOptions, tried: frozenset[str] | None = None
) -> list[Family]:
    """Families of the mounts; one ``tried`` leaves out (mounted since the kept list was made) has no
    series until the next listing, one tried without an answer has ``device_error`` 1."""
    error = Family(
        "node_filesystem_device_error",
        "gauge",
        "Whether an error occurred while getting statistics for the given device.",
        LABELS,
    )
    gauges = [Family(name, "gauge", help_text, LABELS) for name, help_text in _GAUGES]
    seen: set[tuple[str, str, str]] = set()
    for mount in mounts:
        if options.search("mount-points-exclude", mount.mountpoint) or options.search("fs-types-exclude", mount.fstype):
            continue
        labels = (mount.device, mount.fstype, mount.mountpoint)
        if labels in seen:
            continue
        seen.add(labels)
        point = _unescape(mount.mountpoint) if "\\" in mount.mountpoint else mount.mountpoint
        stat = stats.get(point)
        if stat is None and tried is not None and point not in tried:
            continue
        error.samples.append((labels, 0.0 if stat is not None else 1.0))
        if stat is None:
            continue
        readonly = 1.0 if "ro" in mount.options.split(",") else 0.0
        values = (
            stat.blocks * stat.bsize,
            stat.free * stat.bsize,
            stat.avail * stat.bsize,
            stat.files,
            stat.files_free,
            readonly,
        )
        for family, value in zip(gauges, values, strict=True):
            family.samples.append((labels, float(value)))
    return [*gauges, error]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    mounts = parse_mounts(source(sources, MOUNTS))
    text = sources.get("cmd:statfs", "")
    return filesystem_families(mounts, parse_statfs(text), options, statfs_tried(text))


COLLECTOR = Collector(
    name="filesystem",
    paths=(MOUNTS,),
    commands=(("statfs", STATFS),),
    piped=(("statfs", STATFS_PIPED),),
    listings=LISTINGS,
    collect=collect,
    flags=(("mount-points-exclude", MOUNT_POINTS_EXCLUDE), ("fs-types-exclude", FS_TYPES_EXCLUDE)),
)
