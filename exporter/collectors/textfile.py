"""node_exporter's textfile collector over SSH: ``*.prom`` files of a textfile directory on the target.

An admin's textfile scripts (apt updates, SMART, backups...) write ``*.prom`` files that the textfile
collector serves; here they are read in the same request as everything else. The rule that nothing
from configuration reaches the target's shell decides how the directory is chosen: it is one of
:data:`DIRECTORIES`, a fixed set of well-known locations that the script always globs (a glob that
matches nothing costs nothing), and the inventory's ``directory`` only selects which of them this
collector serves (``""`` serves none, like upstream's default). So a custom directory is a symlink
from one of these, not a setting.

As upstream: a file that does not parse, or carries client-side timestamps, sets
``node_textfile_scrape_error 1`` and is skipped while the other files are still served; a configured
directory that does not exist is an error too; ``node_textfile_mtime_seconds{file}`` for every file
read. Differences (docs/exporter.md): histogram and summary samples are served as untyped series of
the same names and labels (what Prometheus stores is the same); a file that is listed but could
not be read is served as empty.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family, gauge

#: Debian's prometheus-node-exporter default first, then the upstream docs' and common roles' choices.
DIRECTORIES = (
    "/var/lib/prometheus/node-exporter",
    "/var/lib/node_exporter/textfile_collector",
    "/var/lib/node_exporter",
)
_GLOBS = " ".join(f"{directory}/*.prom" for directory in DIRECTORIES)
LIST = (
    f'for d in {" ".join(DIRECTORIES)}; do [ -d "$d" ] && echo "dir $d"; done; '
    f"set --; for f in {_GLOBS}; do case $f in *'\n'*) continue;; esac; "
    '[ -f "$f" ] && set -- "$@" "$f"; done; '
    "[ $# -eq 0 ] || stat -c '%Y %n' -- \"$@\""
)
_TYPES = {"counter": "counter", "gauge": "gauge"}


def parse_listing(text: str) -> tuple[set[str], dict[str, float]]:
    """(existing directories, {file: mtime}) from the ``textfile`` command's output."""
    directories, mtimes = set(), {}
    for line in text.splitlines():
        if line.startswith("dir "):
            directories.add(line[4:])
        elif line:
            stamp, _, path = line.partition(" ")
            mtimes[path] = float(stamp)
    return directories, mtimes


def parse_textfile(text: str, path: str) -> list[Family]:
    """One file's families; ``ValueError`` for text that is not the exposition format or has timestamps."""
    by_name: dict[str, tuple[str, str, list[tuple[dict[str, str], float]]]] = {}
    for parsed in text_string_to_metric_families(text):
        kind = _TYPES.get(parsed.type, "untyped")
        for sample in parsed.samples:
            if sample.timestamp is not None:
                raise ValueError(f"{path} contains unsupported client-side timestamps")
            entry = by_name.setdefault(sample.name, (kind, parsed.documentation or f"Metric read from {path}", []))
            entry[2].append((sample.labels, sample.value))
    families = []
    for name, (kind, help_text, samples) in by_name.items():
        labels = tuple(sorted({label for sample_labels, _ in samples for label in sample_labels}))
        family = Family(name, kind, help_text, labels)
        family.samples = [
            (tuple(sample_labels.get(label, "") for label in labels), value) for sample_labels, value in samples
        ]
        families.append(family)
    return families


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    directory = options.get("directory")
    error = False
    families: list[Family] = []
    mtime = Family("node_textfile_mtime_seconds", "gauge", "Unixtime mtime of textfiles successfully read.", ("file",))
    if directory:
        directories, mtimes = parse_listing(sources.get("cmd:textfile", ""))
        error = directory not in directories
        for path in sorted(path for path in mtimes if path.rpartition("/")[0] == directory):
            try:
                families += parse_textfile(sources.get(path, ""), path)
            except ValueError:
                error = True
                continue
            mtime.add((path,), mtimes[path])
    return [
        *families,
        mtime,
        gauge(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            1.0 if error else 0.0,
        ),
    ]


COLLECTOR = Collector(
    name="textfile",
    paths=tuple(f"{directory}/*.prom" for directory in DIRECTORIES),
    commands=(("textfile", LIST),),
    collect=collect,
    flags=(("directory", DIRECTORIES[0]),),
    choices={"directory": (*DIRECTORIES, "")},
    volatile=True,  # an admin's new script's file must show at the next scrape, as in node_exporter
)
