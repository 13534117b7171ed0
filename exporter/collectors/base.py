"""The collector contract: what a collector reads on the target and how it turns that into families.

A collector is data plus one pure function. ``paths`` (constant absolute paths or globs) and
``commands`` (constant ``(name, shell command)`` pairs, only where no file can do it) say what the
target must send; :mod:`exporter.command` joins the enabled collectors' needs into one constant script
and splits the answer back into :data:`Sources`. ``collect(sources, options)`` builds fresh families
from those sources alone: it raises ``ValueError`` when its sources are there but unusable and returns
``[]`` when the host simply has nothing for it (no md arrays, no bonds). Nothing a collector declares
comes from configuration or a request: the script stays one constant string per set of collectors.

``flags`` are the collector's node_exporter options (``--collector.<name>.<flag>``) with upstream's
defaults; the inventory may set them per department (``exporter/config.py`` checks them) and the
collector reads them through :class:`CollectorOptions`. Where upstream reads a file only with a
boolean flag on (bcache's ``priority_stats``), ``flag_paths`` names its constant glob, and the plan adds
it to ``paths`` only for the departments that turn the flag on (:meth:`Collector.planned`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType

from optilab.exporter.family import Family

#: What the target returned: path -> text for each file read (globs expanded; unreadable, missing or
#: empty files absent), and ``"cmd:<name>"`` -> stdout for each constant command that could run.
Sources = Mapping[str, str]

TIERS = ("fast", "slow")
#: what Go's ``strconv.ParseBool`` (a kingpin ``Bool()`` flag) accepts: the ``choices`` of a boolean flag
GO_BOOLS = ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")


def go_bool(value: str) -> bool:
    """A boolean flag's value as ``strconv.ParseBool`` reads it (anything else is false)."""
    return value in GO_BOOLS[:6]


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


#: pattern -> {text: whether the pattern finds it}: hosts repeat the same field, device and mount
#: names every scrape, so each is searched once (bounded: cleared when it grows past the limit)
_VERDICTS: dict[str, dict[str, bool]] = {}
_VERDICT_LIMIT = 4096


def _found(pattern: str, text: str) -> bool:
    verdicts = _VERDICTS.get(pattern)
    if verdicts is None:
        verdicts = _VERDICTS[pattern] = {}
    verdict = verdicts.get(text)
    if verdict is None:
        if len(verdicts) >= _VERDICT_LIMIT:
            verdicts.clear()
        verdict = verdicts[text] = _compile(pattern).search(text) is not None
    return verdict


@dataclass(frozen=True)
class CollectorOptions:
    """One collector's flag values for one department: node_exporter's flag name (without the
    ``collector.<name>.`` prefix) -> value; a flag not set here takes the collector's default."""

    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    defaults: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, flag: str) -> str:
        if flag in self.values:
            return self.values[flag]
        return self.defaults.get(flag, "")

    def regex(self, flag: str) -> re.Pattern[str] | None:
        """The flag as a compiled regex; ``None`` when empty (node_exporter: an empty pattern is unset).
        Use ``.search``: Go's ``MatchString`` is unanchored, upstream's patterns anchor themselves."""
        pattern = self.get(flag)
        return _compile(pattern) if pattern else None

    def search(self, flag: str, text: str) -> bool | None:
        """Whether the flag's regex finds ``text`` (Go's unanchored ``MatchString``); ``None`` if unset."""
        pattern = self.get(flag)
        return _found(pattern, text) if pattern else None

    def selected(self, flag: str, names: tuple[str, ...]) -> tuple[int, ...]:
        """Indexes of ``names`` the flag's regex finds (all when unset); cached per list of names, which a
        kernel repeats unchanged every scrape (/proc/vmstat's fields, a netstat header line)."""
        return _selected(self.get(flag), names)

    def keep(self, include: str, exclude: str, name: str) -> bool:
        """node_exporter's device filter: kept unless it misses ``include`` or matches ``exclude``."""
        return self.search(include, name) is not False and not self.search(exclude, name)


@lru_cache(maxsize=512)
def _selected(pattern: str, names: tuple[str, ...]) -> tuple[int, ...]:
    if not pattern:
        return tuple(range(len(names)))
    regex = _compile(pattern)
    return tuple(index for index, name in enumerate(names) if regex.search(name))


Collect = Callable[[Sources, CollectorOptions], list[Family]]


@dataclass(frozen=True)
class Collector:
    """One node_exporter collector (``name`` as in ``node_scrape_collector_success{collector}``)."""

    name: str
    paths: tuple[str, ...]
    collect: Collect
    commands: tuple[tuple[str, str], ...] = ()
    default_enabled: bool = True
    tier: str = "fast"
    #: (flag, upstream default) pairs this collector understands, e.g. ("device-exclude", "^lo$").
    flags: tuple[tuple[str, str], ...] = ()
    #: flag -> the only values it may take (for flags that select a constant path, like textfile's).
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: boolean flag -> constant paths read only when it is true (what upstream reads only then, like
    #: bcache's priority_stats, which costs the target a sort of every bucket): see :meth:`planned`.
    flag_paths: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: its files come and go between scrapes (a login's session file, a textfile script's output): a
    #: long-lived shell lists them afresh at every call, not once every few (exporter/command.py)
    volatile: bool = False
    #: (name, constant shell text) run with the file listing, so a long-lived shell runs it once every
    #: few calls too: the text appends one item per line to ``$l`` (the mount points ``stat -f`` reads,
    #: which change about as rarely as the files), and the collector's commands read the items back
    #: from ``$listed_<name>``, one per line (exporter/command.py)
    listings: tuple[tuple[str, str], ...] = ()
    #: (command name, constant shell text) whose output ``head`` reads last, from its stdin, while it
    #: reads the files: a process (``stat -f``, ~1.3 ms) then runs in parallel with ``head`` instead of
    #: after it. Its text is appended to that command's ``cmd:<name>`` source, after the command's own
    #: output (one per script: head has one stdin; exporter/command.py)
    piped: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"collector {self.name}: tier must be one of {TIERS}, got {self.tier!r}")

    def options(self, values: Mapping[str, str] | None = None) -> CollectorOptions:
        """Options with this collector's defaults; ``values`` are the department's settings."""
        return CollectorOptions(MappingProxyType(dict(values or {})), MappingProxyType(dict(self.flags)))

    def planned(self, options: CollectorOptions) -> Collector:
        """This collector with the :attr:`flag_paths` its options switch on added to :attr:`paths`: the
        request stays constant strings from code, one per set of collectors and flag values."""
        extra = tuple(path for flag, paths in self.flag_paths.items() if go_bool(options.get(flag)) for path in paths)
        return replace(self, paths=self.paths + extra) if extra else self


def source(sources: Sources, path: str) -> str:
    """The text of ``path``; ``ValueError`` naming it when the target did not send it."""
    text = sources.get(path)
    if text is None:
        raise ValueError(f"{path} not readable on the target")
    return text


def matching(sources: Sources, prefix: str, suffix: str = "") -> dict[str, str]:
    """``{middle: text}`` for every source ``prefix + middle + suffix`` (a glob's expansion)."""
    candidates = under(sources, prefix) if prefix.count("/") >= 4 else sources
    return {
        path[len(prefix) : len(path) - len(suffix)]: text
        for path, text in candidates.items()
        if path.startswith(prefix) and path.endswith(suffix) and len(path) > len(prefix) + len(suffix)
    }


def _bucket(path: str) -> str:
    """The first three components (``/sys/class/net``): the index key of :func:`under`."""
    return "/".join(path.split("/", 4)[:4])


@lru_cache(maxsize=16)
def _index(paths: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The paths by their first three components. A lab's answers name the same paths scrape after
    scrape, so this is built once per set of paths (a few per plan and kind of machine), not once per
    answer; a lab of machines that all differ only builds it per answer (16 sets kept)."""
    index: dict[str, list[str]] = {}
    for path in paths:
        index.setdefault(_bucket(path), []).append(path)
    return {bucket: tuple(found) for bucket, found in index.items()}


_last: tuple[Sources | None, dict[str, tuple[str, ...]]] = (None, {})


def under(sources: Sources, prefix: str) -> dict[str, str]:
    """``{path: text}`` of the sources below ``prefix`` (three or more components deep).

    A scrape's sources are indexed by their first three components (:func:`_index`) and the index
    reused while the same answer is asked again (each /sys collector asks it once): on a host without
    the hardware, a collector then costs a dictionary lookup instead of a scan of the whole answer.
    """
    global _last
    cached, index = _last
    if cached is not sources:
        index = _index(tuple(sources))
        _last = (sources, index)
    return {path: sources[path] for path in index.get(_bucket(prefix), ()) if path.startswith(prefix)}
