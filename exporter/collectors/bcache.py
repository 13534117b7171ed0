"""bcache: ``node_bcache_*`` per cache set from /sys/fs/bcache/<uuid>/ (node_exporter 1.5's bcache).

What upstream (procfs 0.8's bcache package) reads, and how it reads it:

- per cache set ``<uuid>`` (a ``*-*`` directory): six files of its own and four of ``internal/``;
- per backing device ``bdev[0-9]*`` (the link to ``/sys/block/<dev>/bcache``): ``dirty_data``,
  ``writeback_rate_debug`` (required: a backing device without it fails the collector) and its
  seven ``stats_total/`` counters;
- per cache device ``cache[0-9]*``: ``io_errors``, ``metadata_written``, ``written`` and, only with
  ``--collector.bcache.priorityStats`` (off by default: the kernel sorts every bucket to print it),
  ``priority_stats``, which is then required too. The file is read only when the flag is on: its
  glob joins the request through :attr:`Collector.flag_paths`.

bcache prints sizes the way its ``bch_hprint`` does (``1.2M``, ``427.5k``, ``-3.1k``); they are
converted exactly as procfs converts them (:func:`dehumanize`): the digit after the point counts in
1024ths / 100 (``.2`` is 2/10.24), a suffix multiplies by 1024**n, an unknown suffix by 0, a number
without a suffix is a plain float. A value file that is absent counts 0, as upstream. Upstream's
``btree_read_average_duration_seconds`` multiplies the file's microseconds by 1e-9 (it takes them for
nanoseconds); kept, so the series equals node_exporter's. Upstream also parses, and never exports,
the ``stats_five_minute`` counters and the cache set's own ``stats_total``: they are not read here.
"""

from __future__ import annotations

import math
import re

from optilab.exporter.collectors.base import GO_BOOLS, Collector, CollectorOptions, Sources, go_bool, under
from optilab.exporter.family import Family

PREFIX = "/sys/fs/bcache/"
_SET = (
    "average_key_size",
    "btree_cache_size",
    "cache_available_percent",
    "congested",
    "root_usage_percent",
    "tree_depth",
)
_INTERNAL = ("active_journal_entries", "btree_nodes", "btree_read_average_duration_us", "cache_read_races")
_BDEV = ("dirty_data", "writeback_rate_debug")
_PERIOD = (
    "bypassed",
    "cache_hits",
    "cache_misses",
    "cache_bypass_hits",
    "cache_bypass_misses",
    "cache_miss_collisions",
    "cache_readaheads",
)
_CACHE = ("io_errors", "metadata_written", "written")
PRIORITY = "priority_stats"
#: bch_hprint's units (linux drivers/md/bcache/util.c), as procfs maps them
_UNITS = {unit: float(1 << (10 * power)) for power, unit in enumerate("kMGTPEZY", start=1)}
_GO_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GO_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+")
_GO_SPECIAL = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE)
#: Go's unicode.IsSpace: what strings.Fields splits on
_FIELD = re.compile(r"[^\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_U64 = 1 << 64
#: a backing (``bdev[0-9]*``) or cache (``cache[0-9]*``) device's directory in a cache set
_DEVICE = re.compile(r"(bdev|cache)[0-9]")


def go_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)``: decimal, hex (``0x1p4``) and inf/nan forms; out of range and
    anything else is a ``ValueError``."""
    if _GO_DECIMAL.fullmatch(text):
        value = float(text)
        if math.isinf(value):
            raise ValueError(f"{text!r}: value out of range")
        return value
    if _GO_HEX.fullmatch(text):
        return float.fromhex(text)
    if _GO_SPECIAL.fullmatch(text):
        return float(text)
    raise ValueError(f"{text!r} is not a number")


def _pseudo_float(text: str) -> float:
    """procfs' parsePseudoFloat: ``bch_hprint``'s ``<int>.<frac>``, the fraction in 1024ths / 100."""
    whole, *rest = text.split(".")
    value = go_float(whole)
    return value if not rest else value + go_float(rest[0]) / 10.24


def dehumanize(text: str) -> int:
    """procfs' dehumanize: a (possibly ``bch_hprint``-ed) size as an unsigned 64-bit integer."""
    if not text:
        raise ValueError("zero-length reply")
    if not text.isascii():
        raise ValueError(f"{text[:30]!r} is not a bcache value")
    if text[-1] > "9":  # beyond the ASCII digits: a multiplier
        value = _pseudo_float(text[:-1]) * _UNITS.get(text[-1], 0.0)
    else:
        value = go_float(text)
    if not 0 <= value < _U64:  # Go's uint64() of these is implementation-defined (NaN fails here too)
        raise ValueError(f"{text!r} is not an unsigned bcache value")
    return int(value)


def dehumanize_signed(text: str) -> int:
    """procfs' dehumanizeSigned: a leading ``-`` negates the dehumanized rest."""
    if text.startswith("-"):
        return -dehumanize(text[1:])
    return dehumanize(text)


def _value(files: dict[str, str], name: str) -> int:
    """procfs' readValue: an absent file is 0; the last byte (the newline) is not part of the value."""
    text = files.get(name)
    if text is None:
        return 0
    return dehumanize(text[:-1] if text.endswith("\n") else text)


def _lines(text: str) -> list[str]:
    """bufio.Scanner's lines: split at ``\\n``, one trailing ``\\r`` dropped, no empty last line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _last_field(line: str) -> str:
    fields = _FIELD.findall(line)
    return fields[-1] if fields else ""


#: writeback_rate_debug: line prefix -> (key, suffix trimmed, converter); every listed line must parse
_WRITEBACK = (
    ("rate:", "rate", "/sec", dehumanize),
    ("dirty:", "dirty", "", dehumanize),
    ("target:", "target", "", dehumanize),
    ("proportional:", "proportional", "", dehumanize_signed),
    ("integral:", "integral", "", dehumanize_signed),
    ("change:", "change", "/sec", dehumanize_signed),
    ("next io:", "next_io", "ms", None),
)


def parse_writeback_rate_debug(text: str) -> dict[str, int]:
    """``{rate, dirty, target, proportional, integral, change, next_io}`` (absent lines are 0)."""
    values = dict.fromkeys(("rate", "dirty", "target", "proportional", "integral", "change", "next_io"), 0)
    for line in _lines(text):
        for prefix, key, suffix, convert in _WRITEBACK:
            if line.startswith(prefix):
                raw = _last_field(line).removesuffix(suffix)
                values[key] = convert(raw) if convert is not None else _go_int(raw)
                break
    return values


def _go_int(text: str) -> int:
    """``strconv.ParseInt(text, 10, 64)``."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not (body.isascii() and body.isdigit()):
        raise ValueError(f"{text!r} is not an integer")
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"{text!r}: value out of range")
    return value


def parse_priority_stats(text: str) -> tuple[int, int]:
    """(unused percent, metadata percent) from ``priority_stats`` (absent lines are 0)."""
    unused = metadata = 0
    for line in _lines(text):
        if line.startswith(("Unused:", "Metadata:")):
            raw = _last_field(line).removesuffix("%")
            if not (raw.isascii() and raw.isdigit() and int(raw) < _U64):
                raise ValueError(f"priority_stats: {raw!r} is not a percentage")
            if line.startswith("Unused:"):
                unused = int(raw)
            else:
                metadata = int(raw)
    return unused, metadata


def parse(sources: Sources) -> dict[str, dict[str, dict[str, str]]]:
    """``{uuid: {"": set files, "bdev0": files, "cache0": files, ...}}`` with paths relative to each;
    a cache set or device is every directory that sent at least one file."""
    sets: dict[str, dict[str, dict[str, str]]] = {}
    for path, text in under(sources, PREFIX).items():
        uuid, _, rest = path[len(PREFIX) :].partition("/")
        if "-" not in uuid or not rest:
            continue
        head, _, tail = rest.partition("/")
        if tail and _DEVICE.match(head):
            sets.setdefault(uuid, {}).setdefault(head, {})[tail] = text
        else:
            sets.setdefault(uuid, {}).setdefault("", {})[rest] = text
    return sets


def _numbered(devices: dict[str, dict[str, str]], kind: str) -> list[str]:
    """The ``bdev[0-9]*`` or ``cache[0-9]*`` directories, in Go's Glob (byte) order."""
    return sorted(name for name in devices if name.startswith(kind) and _DEVICE.match(name))


def build(sets: dict[str, dict[str, dict[str, str]]], priority: bool) -> list[Family]:
    def family(name: str, kind: str, help_text: str, extra: tuple[str, ...] = ()) -> Family:
        return Family(f"node_bcache_{name}", kind, help_text, ("uuid", *extra))

    own = [
        (
            family("average_key_size_sectors", "gauge", "Average data per key in the btree (sectors)."),
            "average_key_size",
            1.0,
        ),
        (
            family("btree_cache_size_bytes", "gauge", "Amount of memory currently used by the btree cache."),
            "btree_cache_size",
            1.0,
        ),
        (
            family(
                "cache_available_percent",
                "gauge",
                "Percentage of cache device without dirty data, usable for writeback (may contain clean cached data).",
            ),
            "cache_available_percent",
            1.0,
        ),
        (family("congested", "gauge", "Congestion."), "congested", 1.0),
        (
            family(
                "root_usage_percent",
                "gauge",
                "Percentage of the root btree node in use (tree depth increases if too high).",
            ),
            "root_usage_percent",
            1.0,
        ),
        (family("tree_depth", "gauge", "Depth of the btree."), "tree_depth", 1.0),
        (
            family("active_journal_entries", "gauge", "Number of journal entries that are newer than the index."),
            "internal/active_journal_entries",
            1.0,
        ),
        (family("btree_nodes", "gauge", "Total nodes in the btree."), "internal/btree_nodes", 1.0),
        (
            family("btree_read_average_duration_seconds", "gauge", "Average btree read duration."),
            "internal/btree_read_average_duration_us",
            1e-9,
        ),
        (
            family(
                "cache_read_races_total",
                "counter",
                "Counts instances where while data was being read from the "
                "cache, the bucket was reused and invalidated - i.e. where the pointer was stale after the read "
                "completed.",
            ),
            "internal/cache_read_races",
            1.0,
        ),
    ]
    bdev = ("backing_device",)
    writeback = [
        (
            family(
                "dirty_target_bytes",
                "gauge",
                "Current dirty data target threshold for this backing device in bytes.",
                bdev,
            ),
            "target",
        ),
        (family("writeback_rate", "gauge", "Current writeback rate for this backing device in bytes.", bdev), "rate"),
        (
            family(
                "writeback_rate_proportional_term",
                "gauge",
                "Current result of proportional controller, part of writeback rate",
                bdev,
            ),
            "proportional",
        ),
        (
            family(
                "writeback_rate_integral_term",
                "gauge",
                "Current result of integral controller, part of writeback rate",
                bdev,
            ),
            "integral",
        ),
        (
            family("writeback_change", "gauge", "Last writeback rate change step for this backing device.", bdev),
            "change",
        ),
    ]
    dirty = family("dirty_data_bytes", "gauge", "Amount of dirty data for this backing device in the cache.", bdev)
    period = [
        (
            family(
                "bypassed_bytes_total",
                "counter",
                "Amount of IO (both reads and writes) that has bypassed the cache.",
                bdev,
            ),
            "bypassed",
        ),
        (
            family("cache_hits_total", "counter", "Hits counted per individual IO as bcache sees them.", bdev),
            "cache_hits",
        ),
        (
            family("cache_misses_total", "counter", "Misses counted per individual IO as bcache sees them.", bdev),
            "cache_misses",
        ),
        (
            family("cache_bypass_hits_total", "counter", "Hits for IO intended to skip the cache.", bdev),
            "cache_bypass_hits",
        ),
        (
            family("cache_bypass_misses_total", "counter", "Misses for IO intended to skip the cache.", bdev),
            "cache_bypass_misses",
        ),
        (
            family(
                "cache_miss_collisions_total",
                "counter",
                "Instances where data insertion from cache miss raced with write (data already present).",
                bdev,
            ),
            "cache_miss_collisions",
        ),
        (family("cache_readaheads_total", "counter", "Count of times readahead occurred.", bdev), "cache_readaheads"),
    ]
    cache = ("cache_device",)
    per_cache = [
        (
            family("io_errors", "gauge", "Number of errors that have occurred, decayed by io_error_halflife.", cache),
            "io_errors",
        ),
        (
            family(
                "metadata_written_bytes_total",
                "counter",
                "Sum of all non data writes (btree writes and all other metadata).",
                cache,
            ),
            "metadata_written",
        ),
        (
            family("written_bytes_total", "counter", "Sum of all data that has been written to the cache.", cache),
            "written",
        ),
    ]
    unused = family(
        "priority_stats_unused_percent", "gauge", "The percentage of the cache that doesn't contain any data.", cache
    )
    metadata = family("priority_stats_metadata_percent", "gauge", "Bcache's metadata overhead.", cache)
    for uuid in sorted(sets):
        devices = sets[uuid]
        files = devices.get("", {})
        for target, name, scale in own:
            target.add((uuid,), _value(files, name) * scale)
        for name in _numbered(devices, "bdev"):
            files = devices[name]
            if "writeback_rate_debug" not in files:
                raise ValueError(f"failed to read: {PREFIX}{uuid}/{name}/writeback_rate_debug")
            rates = parse_writeback_rate_debug(files["writeback_rate_debug"])
            dirty.add((uuid, name), _value(files, "dirty_data"))
            for target, key in writeback:
                target.add((uuid, name), rates[key])
            for target, key in period:
                target.add((uuid, name), _value(files, f"stats_total/{key}"))
        for name in _numbered(devices, "cache"):
            files = devices[name]
            for target, key in per_cache:
                target.add((uuid, name), _value(files, key))
            if priority:
                if PRIORITY not in files:
                    raise ValueError(f"failed to read: {PREFIX}{uuid}/{name}/{PRIORITY}")
                stats = parse_priority_stats(files[PRIORITY])
                unused.add((uuid, name), stats[0])
                metadata.add((uuid, name), stats[1])
    return (
        [target for target, _, _ in own]
        + [dirty]
        + [target for target, _ in writeback]
        + [target for target, _ in period]
        + [target for target, _ in per_cache]
        + [unused, metadata]
    )


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    sets = parse(sources)
    return build(sets, go_bool(options.get("priorityStats"))) if sets else []


_SETS = PREFIX + "*-*/"
COLLECTOR = Collector(
    "bcache",
    (
        *(_SETS + name for name in _SET),
        *(f"{_SETS}internal/{name}" for name in _INTERNAL),
        *(f"{_SETS}bdev[0-9]*/{name}" for name in _BDEV),
        *(f"{_SETS}bdev[0-9]*/stats_total/{name}" for name in _PERIOD),
        *(f"{_SETS}cache[0-9]*/{name}" for name in _CACHE),
    ),
    collect,
    flags=(("priorityStats", "false"),),
    choices={"priorityStats": GO_BOOLS},
    flag_paths={"priorityStats": (f"{_SETS}cache[0-9]*/{PRIORITY}",)},
)
