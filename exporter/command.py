"""The one script a probe runs on a lab machine, built from the enabled collectors, and its splitter.

Every collector declares constant paths (globs allowed) and, only where no file can do it, constant
commands (:mod:`exporter.collectors.base`). :func:`build_script` joins them into one script that the
target runs with a single file-reading process, ``head -v -c`` over every path: as cheap as the
cheapest alternative measured (bench/README.md "Reading many files"). Nothing from configuration or from a
request is ever interpolated: paths and commands are constants in code, checked against a strict
character set here, and a department's script is one constant string per set of enabled collectors.

The answer, and why its framing cannot be confused with file content::

    @@optilab 3              <- how many names follow
    /proc/stat               <- the readable files, in the order head gets them (shell builtins only)
    /proc/meminfo
    /dev/fd/3
    ==> /proc/stat <==       <- head's own framing (-v: a header for every file)
    ...
    ==> /dev/null <==        <- always last of head's files: the end of the last real file
    ==> standard input <==   <- head's stdin: the piped command's output (stat -f), if any
    ==> cmd:statfs <==       <- each command, framed the same way by the shell's printf
    ...
    @rc 0                    <- its exit status
    @@end

The splitter finds the expected headers from the end backwards, each the last of its name before the
next file's header (:func:`split_sources`). A file that contains copies of *later* files' headers
(with forged texts, and a forged end line) is harmless: the real headers come after it. A copy of the
*next* file's header, or of its own, shows as a section that contains the next found header, and
both sections are dropped. So content can make sources go missing (each collector then reports
failure) but not make one file's text pass for another's — with one exception: a listed file that
head cannot open (it vanished after the list was made: between two listings of a long-lived shell,
up to ``LIST_CALLS`` scrapes, or in the instant between test and open) has no header, and a fake
header for it in an earlier file would be taken as its text. The files read are the kernel's, root's
configuration, logind's session files and the textfile directory, so writing such a header takes
what can write those files.
Paths with a newline are skipped by the shell (their name line would be
ambiguous). Commands run after head, each behind a header the shell prints in head's format and
followed by its exit status line; a command runs in the shell itself (no subshell), so it costs its
own process and nothing more, and one that only needs to run on some hosts can say so with a builtin
test (``[ -r /proc/sys/kernel/arch ] || uname -m``) and cost the others nothing.
Globs that share a directory glob (``/sys/class/power_supply/*/...``: 60 of them) are expanded only
when that directory glob matches (:func:`glob_groups`): a host without the hardware pays one
directory read for the group, not one filter-loop turn per pattern.
GNU ``tail -n +1`` (as fast) and mawk stop at the first read error (a directory, an EIO from a /sys
attribute); ``head`` reports it and goes on to the next file.
A command the target does not have (status 126/127) is absent from the sources.

One command may also have a *piped* part (:attr:`~exporter.collectors.base.Collector.piped`): a
constant command that the shell runs as head's stdin (``{ stat -f ...; } | head ... /dev/null -``),
so its process runs while head reads the files instead of after it (1–1.6 ms less wall time per
scrape on the 2-core test VM, docs/exporter.md). Its output follows head's ``standard input`` header and is
appended to that command's own text in the sources; a ``: optilab-piped <name>`` line names it in
the script (a no-op to the shell, read by the simulator).

Filesystem sizes come from ``stat -f`` over the mount points of ``/proc/1/mounts`` (what
node_exporter statfs()es), read by a builtin ``read`` loop and passed to stat as arguments, never as
code. Pseudo filesystems that node_exporter excludes by default are not stat'ed at all. The loop is
a *listing* (:attr:`~exporter.collectors.base.Collector.listings`): it runs with the file listing,
so a long-lived shell reads the mount table's ~1 KB byte by byte (dash's ``read`` takes one byte per
``read(2)``: ~0.5 µs a byte on the 2-core test VM) once every ``LIST_CALLS`` calls, not every scrape;
``stat -f`` itself runs every scrape on the kept mount points, and the filesystem collector serves
only the mounts that the fresh ``/proc/1/mounts`` (read by ``head`` every scrape) still lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the collectors' registry builds its scripts here: no import cycle at run time
    from optilab.exporter.collectors.base import Collector

START = "@@optilab "
END = "@@end"
#: The line between a script's two parts (:func:`build_script`): above it the readable files are
#: listed into ``$l``, below it they are read. A no-op to the shell (``:``).
LIST_END = ": optilab-list-end"
#: The no-op line before head that names the command whose piped part head reads as its stdin.
PIPED = ": optilab-piped "
#: head's header for its stdin (GNU coreutils and busybox print the same name).
STDIN = "standard input"
_LOCALE = "LC_ALL=C; export LC_ALL"
#: What a path or glob may contain: constants in code, but checked so no quoting is ever needed.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_.,:+@%*?\[\]/-]+$")
_SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_COMMANDS = 8
#: bytes read of any one file at most (``head -c``): a runaway file cannot flood the answer.
FILE_CAP = 1 << 20
_STATUS = "@rc "
_NOT_FOUND = ("126", "127")


def script_parts(collectors: Iterable[Collector]) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The de-duplicated paths and commands of ``collectors``, in first-declared order."""
    paths: dict[str, None] = {}
    commands: dict[str, str] = {}
    for collector in collectors:
        for path in collector.paths:
            if not _SAFE_PATH.match(path):
                raise ValueError(f"collector {collector.name}: unsafe path {path!r}")
            paths.setdefault(path, None)
        for name, command in collector.commands:
            if not _SAFE_NAME.match(name):
                raise ValueError(f"collector {collector.name}: bad command name {name!r}")
            if commands.setdefault(name, command) != command:
                raise ValueError(f"command {name!r} declared twice with different text")
    if len(commands) > MAX_COMMANDS:
        raise ValueError(f"{len(commands)} commands; at most {MAX_COMMANDS} fit in one script")
    return tuple(paths), tuple(commands.items())


def script_listings(collectors: Iterable[Collector]) -> tuple[tuple[str, str], ...]:
    """The de-duplicated listings (:attr:`Collector.listings`) of ``collectors``, in first-declared order."""
    listings: dict[str, str] = {}
    for collector in collectors:
        for name, text in collector.listings:
            if not _SAFE_NAME.match(name):
                raise ValueError(f"collector {collector.name}: bad listing name {name!r}")
            if listings.setdefault(name, text) != text:
                raise ValueError(f"listing {name!r} declared twice with different text")
    return tuple(listings.items())


def script_piped(collectors: Iterable[Collector]) -> tuple[str, str] | None:
    """The one piped command part of ``collectors`` (:attr:`Collector.piped`) as (name, text), if any."""
    piped: dict[str, str] = {}
    for collector in collectors:
        for name, text in collector.piped:
            if name not in {command for command, _ in collector.commands}:
                raise ValueError(f"collector {collector.name}: piped part {name!r} is not one of its commands")
            if piped.setdefault(name, text) != text:
                raise ValueError(f"piped part of {name!r} declared twice with different text")
    if len(piped) > 1:
        raise ValueError(f"piped parts of {sorted(piped)}: head has one stdin, so at most one fits in a script")
    return next(iter(piped.items()), None)


def build_script(collectors: Iterable[Collector]) -> str:
    """One constant POSIX sh script that prints every source of ``collectors``, framed.

    It has two parts, split by the :data:`LIST_END` line. Above it, the script finds which of the
    declared files exist and are readable and leaves them in ``$l``, one per line; below it, it reads
    them (and lists afresh the files of collectors whose files come and go: ``volatile``). Run whole
    (an exec per scrape) it does both every time; a long-lived shell (``exporter/shellsession.py``)
    runs the part above once every few calls and keeps ``$l``, so most scrapes skip the globs and the
    ``[ -r ]`` test of ~190 paths (~1 ms of the target's CPU, bench/README.md)."""
    collectors = list(collectors)
    paths, commands = script_parts(collectors)
    volatile = {path for collector in collectors if collector.volatile for path in collector.paths}
    single, groups = glob_groups([path for path in paths if path not in volatile])
    plain, loops = _directory_loops(single)
    lines = [_LOCALE, "set -- " + " ".join(plain), *loops]
    # a group's patterns are expanded only when its directory glob matches something: most hosts have
    # no fc_host, infiniband or power_supply, and each literal pattern left over costs the filter
    # loop below an iteration (~3 us each, ~150 of them on this machine)
    for directory, members in groups:
        plain, loops = _directory_loops(members)
        body = "; ".join(([f'set -- "$@" {" ".join(plain)}'] if plain else []) + loops)
        lines.append(f'for g in {directory}; do if [ -e "$g" ] || [ -L "$g" ]; then {body}; fi; break; done')
    # keep what exists and is readable (globs that matched nothing stay literal and drop out here);
    # collected in one string and split once (set -f, IFS=newline): rebuilding "$@" per path was
    # quadratic and cost the target ~12 ms of CPU at 280 paths (col-sys, docs/exporter.md)
    # each listing's items come first in $l, behind a line "@@<name>" (no path starts with "@"), and a
    # line "@@" ends them: the part below takes them off the front of "$@" again (removing a pattern
    # from the front of a ~10 KB string costs dash milliseconds; shifting "$@" costs nothing)
    listings = script_listings(collectors)
    if listings:
        lines.append("l=")
    for name, text in listings:
        lines.append(f'l="$l@@{name}\n"')
        lines.append(text)
    if listings:
        lines.append('l="$l@@\n"')
    keep = 'for f; do case $f in *\'\n\'*) ;; *) [ -r "$f" ] && l="$l$f\n";; esac; done'
    lines.append(keep if listings else "l=; " + keep)
    lines.append(LIST_END)
    lines.append(_LOCALE)  # a shell session runs the part below on its own
    lines.append("set -f; IFS='\n'; set -- $l; unset IFS l; set +f")
    if listings:
        lines.append("nl='\n'")
    for name, _ in listings:
        lines.append(
            f"shift; listed_{name}=; while [ $# -gt 0 ]; do case $1 in @@*) break;; esac; "
            f'listed_{name}="$listed_{name}$1$nl"; shift; done'
        )
    if listings:
        lines.append("shift")
    fresh = [path for path in paths if path in volatile]
    if fresh:  # logind's session files (a login must show at once) and textfile's *.prom: every call
        lines.append(
            f'for f in {" ".join(fresh)}; do case $f in *\'\n\'*) ;; *) [ -r "$f" ] && set -- "$@" "$f";; esac; done'
        )
    lines.append(f"printf '{START}%d\\n' $#")
    lines.append("[ $# -gt 0 ] && printf '%s\\n' \"$@\"")
    piped = script_piped(collectors)
    if piped is None:
        lines.append(f'head -v -c {FILE_CAP} -- "$@" /dev/null 2>/dev/null')
    else:  # the piped part ``exec``s its command in the pipeline's process: no fork beyond its own
        lines.append(PIPED + piped[0])
        lines.append(f'{{ {piped[1]}\n}} 2>/dev/null | head -v -c {FILE_CAP} -- "$@" /dev/null - 2>/dev/null')
    for name, command in commands:
        lines.append(f"printf '\\n==> cmd:{name} <==\\n'")
        lines.append(f'{{ {command}\n}} 2>/dev/null; echo "{_STATUS}$?"')
    lines.append(f"echo '{END}'")
    return "\n".join(lines) + "\n"


def glob_groups(paths: Sequence[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """``paths`` split into those listed as they are and groups ``(directory glob, patterns)``: the
    patterns (two or more) whose first glob component is that directory, e.g. every
    ``/sys/class/power_supply/*/...`` under ``/sys/class/power_supply/*``."""
    single: list[str] = []
    groups: dict[str, list[str]] = {}
    for path in paths:
        parts = path.split("/")
        first = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts) - 1)
        if first < len(parts) - 1:
            groups.setdefault("/".join(parts[: first + 1]), []).append(path)
        else:
            single.append(path)
    for directory in [d for d, members in groups.items() if len(members) < 2]:
        single.extend(groups.pop(directory))
    return single, list(groups.items())


def _directory_loops(patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """``patterns`` as (those listed as they are, loops): two or more patterns whose globs differ only
    in the last component of one directory and start with the same literal text (udev's nine
    ``/run/udev/data/b<major>:*``; grouped by first letter) become one loop over
    ``<directory>/<that text>*`` with a ``case``:
    one directory read instead of one per pattern, and only the entries the prefix lets through cost a
    turn of the loop (/run/udev/data holds ~1000 entries on a desktop, ``bench/script_pieces.py``).
    Globs without a shared first letter (hwmon's ``in*``, ``fan*``...) stay separate: every entry
    would cost a turn. ``case`` matches like the glob (no ``/`` in a name, no dot files: ``*`` lists none)."""
    by_start: dict[tuple[str, str], list[str]] = {}  # (directory, first letter) -> last components
    for path in patterns:
        directory, _, last = path.rpartition("/")
        if any(c in last for c in "*?[") and last[0] not in "*?[":
            by_start.setdefault((directory, last[0]), []).append(last)
    looped = {key: lasts for key, lasts in by_start.items() if len(lasts) > 1}
    plain = [
        path
        for path in patterns
        if (path.rpartition("/")[0], path.rpartition("/")[2][:1]) not in looped
        or not any(c in path.rpartition("/")[2] for c in "*?[")
    ]
    loops = [
        f"for f in {directory}/{_literal_prefix(lasts)}*; do case ${{f##*/}} in {'|'.join(lasts)}) "
        'set -- "$@" "$f";; esac; done'
        for (directory, _), lasts in looped.items()
    ]
    return plain, loops


def _literal_prefix(names: Sequence[str]) -> str:
    """The literal text every glob of ``names`` starts with (``b`` for ``b8:*`` and ``b259:*``)."""
    literal = [name[: min((name.index(c) for c in "*?[" if c in name), default=len(name))] for name in names]
    prefix = literal[0]
    for name in literal[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def command_names(collectors: Iterable[Collector]) -> tuple[str, ...]:
    """The command names of the script, in the order it runs them."""
    return tuple(name for name, _ in script_parts(collectors)[1])


def piped_name(collectors: Iterable[Collector]) -> str | None:
    """The name of the command whose piped part head reads as its stdin, if the script has one."""
    piped = script_piped(collectors)
    return None if piped is None else piped[0]


def split_sources(output: str, commands: Sequence[str], piped: str | None = None) -> tuple[dict[str, str], bool]:
    """The script's output back to ``{path or "cmd:<name>": text}``; the flag says it arrived whole.

    ``commands`` are the script's command names in order (:func:`command_names`), ``piped`` the one
    whose piped part head read as its stdin (:func:`piped_name`): that text is appended to the
    command's own. Text before the start line (a login banner) is ignored.

    A file's text may hold anything, head's ``==> name <==`` lines and the end line too, so the
    headers are found from the end backwards: each one the last of its name before the next file's
    header. A text that copies the headers of later files (with forged texts after them, and a forged
    end line) is then only text, since the real headers follow it. A text that copies the header of
    the very next file cannot be told from a cut: both files are dropped, as is a file whose text
    copies its own header (its predecessor then holds the real header). An answer with no header
    copies at all and none missing, the common case, gives the same sections in one pass (half the
    CPU of the backwards search on this machine's answer: 130 against 270 µs).
    """
    start, count, eol = output.find(START), -1, -1
    while start >= 0:  # the first line "@@optilab <count>" (a banner may say anything before it)
        eol = output.find("\n", start)
        number = output[start + len(START) : eol] if eol > 0 else ""
        if (start == 0 or output[start - 1] == "\n") and number.isdigit():
            count = int(number)
            break
        start = output.find(START, start + 1)
    if count < 0:
        return {}, False
    listed = output[eol + 1 :].split("\n", count)  # the names, one per line, then the rest
    if len(listed) <= count:
        return {}, False
    pos = len(output) - len(listed[count])
    names = listed[:count]
    names.append("/dev/null")
    if piped is not None:
        names.append(STDIN)
    names.extend(f"cmd:{name}" for name in commands)
    end_at = output.rfind(f"\n{END}\n", pos - 1)
    sources = _plain_sections(output, pos, end_at, names)
    complete = sources is not None
    if sources is None:
        sources, complete = _guarded_sections(output, pos, end_at, names)
    sources.pop("/dev/null", None)
    stdin = sources.pop(STDIN, "")
    for name in commands:
        key = f"cmd:{name}"
        if key in sources:
            body, sep, status = sources.pop(key).rpartition(_STATUS)
            if sep and status.strip() not in _NOT_FOUND:
                sources[key] = body + stdin if name == piped else body
    return {k: v for k, v in sources.items() if v or k.startswith("cmd:")}, complete


def _plain_sections(output: str, pos: int, end_at: int, names: list[str]) -> dict[str, str] | None:
    """The common answer, split in one pass: ``None`` unless it arrived whole with every listed file's
    header, in order, and ``==> `` nowhere else (no file's text holds anything like a header). Then
    head's headers are the only ones, and :func:`_guarded_sections` would find the same sections."""
    if end_at < 0 or not output.startswith("==> ", pos) or output.count("==> ", pos, end_at) != len(names):
        return None
    parts = [part.partition(" <==\n") for part in output[pos + 4 : end_at].split("\n==> ")]
    # a name holds no newline, so the first " <==\n" of a part ends its header
    if [name for name, _, _ in parts] != names or not all(sep for _, sep, _ in parts):
        return None
    return dict(zip(names, [text for _, _, text in parts], strict=True))


def _guarded_sections(output: str, pos: int, end_at: int, names: list[str]) -> tuple[dict[str, str], bool]:
    """The sections of an answer that may hold copies of headers, or lack some (a file vanished, the
    answer was cut): each header found from the end backwards (:func:`split_sources`)."""
    headers = [f"==> {name} <==\n" for name in names]
    limit = end_at + 1 if end_at >= 0 else len(output) + 1  # one past the last text's framing newline
    found: list[tuple[int, int, int]] = []  # (index in names, header start, text end), last file first
    for index in range(len(names) - 1, -1, -1):
        at = output.rfind(headers[index], pos, limit)
        if at >= 0:  # else it vanished between the shell's test and head's open, or the answer was cut
            found.append((index, at, limit - 1))  # the newline before the next header is framing
            limit = at
    found.reverse()
    complete = bool(found) and found[-1][0] == len(names) - 1 and end_at >= 0
    sources: dict[str, str] = {}
    suspect: set[int] = set()
    for place, (index, at, stop) in enumerate(found):
        begin = at + len(headers[index])
        text = sources[names[index]] = output[begin : max(begin, stop)]
        if place + 1 < len(found) and headers[found[place + 1][0]] in text:
            suspect.update((index, found[place + 1][0]))
    for index in suspect:
        sources.pop(names[index], None)
    return sources, complete


def frame(sources: Mapping[str, str], commands: Sequence[str] = (), piped: str | None = None) -> str:
    """What the script prints for ``sources`` (path -> text, plus ``cmd:<name>`` for ``commands``):
    the simulator's answer, and a way to build test inputs. Commands get exit status 0, or 127 (not
    found) when ``sources`` has nothing for them. The ``piped`` command's text comes whole on head's
    stdin (its own section is then empty: :func:`split_sources` joins the two)."""
    files = [(path, text) for path, text in sources.items() if not path.startswith("cmd:")]
    parts = [f"{START}{len(files)}\n", *(f"{path}\n" for path, _ in files)]
    stdin = [(STDIN, sources.get(f"cmd:{piped}") or "")] if piped is not None else []
    for index, (path, text) in enumerate([*files, ("/dev/null", ""), *stdin]):
        parts.append(("\n" if index else "") + f"==> {path} <==\n")
        parts.append(text)
    for name in commands:  # a command without a source is one the host does not have
        output = sources.get(f"cmd:{name}")
        if name == piped and output is not None:
            output = ""
        parts.append(f"\n==> cmd:{name} <==\n{output or ''}{_STATUS}{127 if output is None else 0}\n")
    parts.append(f"{END}\n")
    return "".join(parts)


if TYPE_CHECKING:  # built on first use by __getattr__ below; declared here for type checkers
    BATCH_SCRIPT: str
    DEFAULT_PATHS: tuple[str, ...]
    DEFAULT_COMMANDS: tuple[str, ...]


def __getattr__(name: str) -> object:
    """``BATCH_SCRIPT`` (the default plan's script), ``DEFAULT_PATHS`` and ``DEFAULT_COMMANDS`` (what it
    reads and runs), built on first use: the collectors' registry imports this module, so they cannot
    be built at import time."""
    if name in ("BATCH_SCRIPT", "DEFAULT_PATHS", "DEFAULT_COMMANDS"):
        from optilab.exporter.collectors import make_plan

        plan = make_plan()
        paths = script_parts(collector for collector, _ in plan.collectors)[0]
        values = {"BATCH_SCRIPT": plan.script, "DEFAULT_PATHS": paths, "DEFAULT_COMMANDS": plan.commands}
        globals().update(values)
        return values[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
