"""zfs: ``node_zfs_*`` from /proc/spl/kstat/zfs (node_exporter's zfs collector on Linux).

Every ``uint64`` (type 4) kstat of the module's files becomes an untyped ``node_zfs_<subsystem>_<name>``
whose HELP is its sysctl-style key (``kstat.zfs.misc.arcstats.hits``); per pool, ``<pool>/io`` gives
``node_zfs_zpool_*{zpool}``, ``<pool>/objset-*`` ``node_zfs_zpool_dataset_*{zpool,dataset}`` and
``<pool>/state`` ``node_zfs_zpool_state{zpool,state}``. Only hosts with the zfs module have the
directory: the globs match nothing elsewhere.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, matching, under
from optilab.exporter.family import Family

BASE = "/proc/spl/kstat/zfs/"
SUBSYSTEMS = {
    "zfs_abd": "abdstats",
    "zfs_arc": "arcstats",
    "zfs_dbuf": "dbuf_stats",
    "zfs_dmu_tx": "dmu_tx",
    "zfs_dnode": "dnodestats",
    "zfs_fm": "fm",
    "zfs_vdev_cache": "vdev_cache_stats",
    "zfs_vdev_mirror": "vdev_mirror_stats",
    "zfs_xuio": "xuio_stats",
    "zfs_zfetch": "zfetchstats",
    "zfs_zil": "zil",
}
POOL_STATES = ("online", "degraded", "faulted", "offline", "removed", "unavail")
_UINT64 = "4"


def kstats(text: str, what: str) -> list[tuple[str, str | None, int]]:
    """(name, dataset or None, value) of each uint64 kstat after the ``name type data`` header."""
    started, out, dataset = False, [], None
    for line in text.splitlines():
        parts = line.split()
        if not started:
            started = parts == ["name", "type", "data"]
            continue
        if len(parts) < 3:
            continue
        if parts[0] == "dataset_name":
            dataset = parts[2]
            continue
        if parts[1] == _UINT64:
            if not parts[2].isdigit():
                raise ValueError(f"could not parse expected integer value for {what}.{parts[0]}")
            out.append((parts[0], dataset, int(parts[2])))
    if not started:
        raise ValueError(f"did not parse a single {what!r} metric")
    return out


def pool_io(text: str, pool: str) -> list[tuple[str, int]]:
    lines = [line.split() for line in text.splitlines()]
    for index, fields in enumerate(lines):
        if len(fields) >= 12 and fields[0] == "nread":
            out = []
            for values in lines[index + 1 :]:
                if len(values) < len(fields) or not all(v.isdigit() for v in values[: len(fields)]):
                    raise ValueError(f"could not parse expected integer value for {pool}/io")
                out += [(field, int(value)) for field, value in zip(fields, values, strict=False)]
            return out
    return []


def _name(key: str) -> str:
    return key.rsplit(".", 1)[-1].replace("-", "_")


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    families: dict[str, Family] = {}

    def add(
        name: str, kind: str, help_text: str, labels: tuple[str, ...], values: tuple[str, ...], value: float
    ) -> None:
        family = families.get(name)
        if family is None:
            family = families[name] = Family(name, kind, help_text, labels)
        family.add(values, value)

    mine = under(sources, BASE)
    if not mine:
        return []  # no zfs module
    found = False
    for subsystem, file in SUBSYSTEMS.items():
        text = mine.get(BASE + file)
        if text is None:
            continue
        found = True
        for name, _, value in kstats(text, f"kstat.zfs.misc.{file}"):
            key = f"kstat.zfs.misc.{file}.{name}"
            add(f"node_{subsystem}_{_name(key)}", "untyped", key, (), (), value)
    for pool, text in sorted(matching(mine, BASE, "/io").items()):
        found = True
        for field, value in pool_io(text, pool):
            key = f"kstat.zfs.misc.io.{field}"
            add(f"node_zfs_zpool_{_name(key)}", "untyped", key, ("zpool",), (pool,), value)
    for path, text in sorted(mine.items()):
        rest = path[len(BASE) :]
        pool, _, file = rest.partition("/")
        if not file.startswith("objset-") or "/" in file:
            continue
        found = True
        for name, dataset, value in kstats(text, f"{pool} objset"):
            key = f"kstat.zfs.misc.objset.{name}"
            add(
                f"node_zfs_zpool_dataset_{_name(key)}",
                "untyped",
                key,
                ("zpool", "dataset"),
                (pool, dataset or ""),
                value,
            )
    for pool, text in sorted(matching(mine, BASE, "/state").items()):
        found = True
        state = (text.splitlines() or [""])[0].lower()
        for name in POOL_STATES:
            add(
                "node_zfs_zpool_state",
                "gauge",
                "kstat.zfs.misc.state",
                ("zpool", "state"),
                (pool, name),
                1.0 if state == name else 0.0,
            )
    return list(families.values()) if found else []


COLLECTOR = Collector(
    "zfs",
    (*(BASE + file for file in SUBSYSTEMS.values()), BASE + "*/io", BASE + "*/objset-*", BASE + "*/state"),
    collect,
)
