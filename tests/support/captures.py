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
from optilab.exporter.command import END, START, frame
from optilab.exporter.family import Family
from tests.support.paths import DATA

_SECTION_PATHS = {
    "stat": "/proc/stat",
    "meminfo": "/proc/meminfo",
    "loadavg": "/proc/loadavg",
    "uptime": "/proc/uptime",
    "netdev": "/proc/net/dev",
    "mounts": "/proc/1/mounts",
    "filefd": "/proc/sys/fs/file-nr",
    "osrelease": "/etc/os-release",
}
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
        # v2's one ``who -u`` serves lab and seats; v1's own date (with the time section's fraction) stays
        sources.update({key: text for key, text in seat_sources(sections["seats"]).items() if key != "cmd:date"})
    return sources


#: ``show-session`` property -> logind's state-file key (``Remote=yes`` is ``REMOTE=1`` there).
_SESSION_KEYS = {"Class": "CLASS", "Type": "TYPE", "Seat": "SEAT", "TTY": "TTY", "State": "STATE"}


def seat_sources(section: str) -> dict[str, str]:
    """A v1 ``seats`` section (``now``, ``self``, every session's full ``loginctl show-session`` block,
    ``@who`` and ``who -u``) as the v2 seat sources. Only the form changes: each session's properties
    go to logind's state file of that session (``/run/systemd/sessions/<id>``, logind's key names,
    ``REMOTE=0|1``, empty values left out as logind does); ``cmd:seats`` keeps ``self`` and, as the
    shell selects them, the hints of the sessions that are not remote, of a user class, not closing
    and not ours; ``cmd:who`` is the ``who`` part and ``cmd:date`` the ``now`` line."""
    lines = section.splitlines()
    header = dict(line.partition(" ")[::2] for line in lines[:2])
    who_at = lines.index("@who")
    own = header.get("self", "").strip()
    sources = {
        "cmd:date": f"{header['now']}.000000000 +0000 UTC\n",
        "cmd:who": "".join(f"{line}\n" for line in lines[who_at + 1 :]),
    }
    hints = []
    if "@loginctl" in lines:
        blocks = "\n".join(lines[lines.index("@loginctl") + 1 : who_at]).split("\n\n")
        for block in blocks:
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            file_lines = ["# This is private data. Do not parse.", f"REMOTE={int(props['Remote'] == 'yes')}"]
            file_lines += [f"{key}={props[name]}" for name, key in _SESSION_KEYS.items() if props.get(name)]
            sources[f"/run/systemd/sessions/{props['Id']}"] = "\n".join(file_lines) + "\n"
            if (
                props["Remote"] == "no"
                and props["Class"].startswith("user")
                and props["State"] != "closing"
                and props["Id"] != own
            ):
                hints.append(
                    "\n".join(f"{name}={props[name]}" for name in ("Id", "LockedHint", "IdleHint", "IdleSinceHint"))
                )
    sources["cmd:seats"] = f"self {own}\n" + ("@loginctl\n" + "\n\n".join(hints) + "\n" if hints else "")
    return sources


def captured_sources(name: str, plan: Plan | None = None) -> dict[str, str]:
    """A v2 capture (tests/data/sources/<name>.txt) split the way the probe splits it."""
    plan = plan or make_plan()
    sources, complete = plan.split((DATA / "sources" / f"{name}.txt").read_text())
    assert complete, name
    return sources


def answer(sources: dict[str, str], plan: Plan | None = None) -> str:
    """The script's answer carrying ``sources`` (what a runner returns): every command the default
    plan runs gets a header, those ``sources`` lack as not found."""
    plan = plan or make_plan()
    return frame(sources, plan.commands, plan.piped)


__all__ = ["END", "START", "answer", "batch_sources", "captured_sources", "seat_sources"]


def collect_all(output: str, plan: Plan | None = None) -> tuple[dict[str, Family], dict[str, str], bool]:
    """Every collector of ``plan`` on the script's ``output``: ({family name: family}, {collector: error},
    whether the answer arrived whole)."""
    plan = plan or make_plan()
    sources, complete = plan.split(output)
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
