"""Real captures as collector sources.

``tests/data/sources/<name>.txt`` are answers of the collection script captured on real machines
(``debian``: this machine, through ``sh``), kept byte for byte. ``tests/data/batch/<distro>.txt`` are
older captures from Debian, Rocky and Alpine machines made with the v1 batch script (one section per
command); :func:`batch_sources` maps each section to the source the v2 script reads for it. Only
the form changes: ``df -PTk``/``df -PTi`` rows become the ``stat -f`` lines that carry the same numbers
(1 KiB blocks; free = size - used), ``date +%s`` gets a zone, the five ``uname`` lines become the
/proc/sys/kernel files (domainname, which v1 did not read, is the kernel's default ``(none)``).
"""

from __future__ import annotations

from optilab.exporter.collectors import Plan, make_plan
from optilab.exporter.command import END, START, frame, split_sources
from optilab.exporter.family import Family
from tests.support.paths import DATA

_SECTION_PATHS = {"stat": "/proc/stat", "meminfo": "/proc/meminfo", "loadavg": "/proc/loadavg",
                  "uptime": "/proc/uptime", "netdev": "/proc/net/dev", "mounts": "/proc/1/mounts",
                  "filefd": "/proc/sys/fs/file-nr", "osrelease": "/etc/os-release"}
_KERNEL = ("ostype", "hostname", "osrelease", "version", "arch")


def _sections(text: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@optilab "):
            current = line.split()[1]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {name: "".join(f"{line}\n" for line in lines) for name, lines in sections.items() if name != "end"}


def _df_rows(text: str) -> dict[str, list[str]]:
    """{mount point: [device, type, total, used, available]} of df -P output (busybox wraps long names)."""
    rows, pending = {}, ""
    for line in text.splitlines()[1:]:
        line = f"{pending} {line}" if pending else line
        fields = line.split(None, 6)
        if len(fields) == 1:
            pending = line
            continue
        pending = ""
        rows[fields[6]] = fields[:5]
    return rows


def _statfs(df: str, dfi: str, mounts: str) -> str:
    """stat -f lines for df's rows, plus the mounts df left out as duplicates (a bind mount of a device
    df lists elsewhere): statfs() of those returns the same filesystem's numbers."""
    blocks, inodes = _df_rows(df), _df_rows(dfi)
    by_device = {row[0]: (mountpoint, row) for mountpoint, row in blocks.items()}
    for line in mounts.splitlines():
        device, mountpoint = line.split()[:2]
        mountpoint = mountpoint.replace("\\040", " ")
        if mountpoint not in blocks and device in by_device:
            source, row = by_device[device]
            blocks[mountpoint] = row
            inodes.setdefault(mountpoint, inodes.get(source, ["", "", "0", "0", "0"]))
    lines = []
    for mountpoint, (_dev, _type, total, used, avail) in blocks.items():
        files = inodes.get(mountpoint, ["", "", "0", "0", "0"])
        ffree = 0 if files[4] == "-" else int(files[4])
        total_files = 0 if files[2] == "-" else int(files[2])
        lines.append(f"{total} {int(total) - int(used)} {avail} 1024 {total_files} {ffree} {mountpoint}")
    return "".join(f"{line}\n" for line in lines)


def batch_sections(distro: str) -> dict[str, str]:
    """The v1 capture of ``distro`` as its sections (``seats`` is read as a whole by its parser)."""
    return _sections((DATA / "batch" / f"{distro}.txt").read_text())


def batch_sources(distro: str) -> dict[str, str]:
    """The v1 capture of ``distro`` as v2 sources."""
    sections = _sections((DATA / "batch" / f"{distro}.txt").read_text())
    sources = {path: sections[name] for name, path in _SECTION_PATHS.items() if name in sections}
    uname = sections["uname"].splitlines()
    for name, value in zip(_KERNEL, [uname[0], uname[1], uname[2], uname[3], uname[4]], strict=True):
        sources[f"/proc/sys/kernel/{name}"] = value + "\n"
    sources["/proc/sys/kernel/domainname"] = "(none)\n"
    sources["cmd:statfs"] = _statfs(sections["df"], sections["dfi"], sections["mounts"])
    sources["cmd:date"] = sections["time"].strip() + " +0000 UTC\n"
    sources["cmd:who"] = sections.get("who", "")
    sources["cmd:machine"] = ""
    if "seats" in sections:
        sources["cmd:seats"] = sections["seats"]
    return sources


def captured_sources(name: str, plan: Plan | None = None) -> dict[str, str]:
    """A v2 capture (tests/data/sources/<name>.txt) split the way the probe splits it."""
    plan = plan or make_plan()
    sources, complete = split_sources((DATA / "sources" / f"{name}.txt").read_text(), plan.commands)
    assert complete, name
    return sources


def answer(sources: dict[str, str], plan: Plan | None = None) -> str:
    """The script's answer carrying ``sources`` (what a runner returns): every command the default
    plan runs gets a header, those ``sources`` lack as not found."""
    return frame(sources, (plan or make_plan()).commands)


__all__ = ["END", "START", "answer", "batch_sources", "captured_sources"]


def collect_all(output: str, plan: Plan | None = None) -> tuple[dict[str, Family], dict[str, str], bool]:
    """Every collector of ``plan`` on the script's ``output``: ({family name: family}, {collector: error},
    whether the answer arrived whole)."""
    plan = plan or make_plan()
    sources, complete = split_sources(output, plan.commands)
    families: dict[str, Family] = {}
    errors: dict[str, str] = {}
    for collector, options in plan.collectors:
        try:
            for family in collector.collect(sources, options):
                families[family.name] = family
        except (ValueError, IndexError, KeyError) as exc:
            errors[collector.name] = f"{type(exc).__name__}: {exc}"
    return families, errors, complete


def sample_values(family: Family) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted (label, value) pairs: value} of one family."""
    return {tuple(sorted(zip(family.labels, labels, strict=True))): value for labels, value in family.samples}
