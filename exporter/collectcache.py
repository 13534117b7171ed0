"""Per-host memo of collector results, keyed on the raw text of the sources each collector reads.

A collector is a pure function of its sources and options (``exporter/collectors/base.py``), and most
of a host's files do not change between two scrapes (os-release, dmi, uname, cpufreq limits, hwmon
names, most netclass attributes, /proc/meminfo on an idle simulated host). :class:`CollectCache`
keeps, per host and collector, a digest of the texts the collector read last time and the families it
built from them; when those texts digest the same again (same paths, and the same 64-bit hash of their
text) it serves the same family objects instead of parsing again. The renderer
(:class:`~exporter.family.Exposition` with ``reuse``) keeps each family's text on it, so those
families are not rendered again either.
Families served from here are shared between scrapes: nothing may change them after they are built
(nothing in the exporter does).

What a collector reads is derived from what it declares: its ``paths`` (globs, matched here with
``fnmatch``, whose ``*`` also crosses ``/`` and whose patterns also match dot files, so a key can only
be counted as read too often, never too rarely) and its ``cmd:<name>`` commands.
``tests/test_collectcache.py`` checks on real captures that every collector builds the same families
from those sources alone as from the whole answer.

Families are kept only for sources that did not change between the last two scrapes (and on a host's
first scrape): /proc/stat, /proc/net/dev and the like change every time, and keeping their families
alive from one scrape to the next would only hold memory and give the garbage collector ~1000 more
live objects per host to walk; their digest is kept, so a source that stops changing has its families
kept from the next scrape on.

The digest is Python's own ``hash`` of the texts (SipHash with a key drawn at random per process, so
a host cannot aim for a collision): keeping the texts themselves held ~6.5 MB for 254 hosts, and
comparing a kept text with the new one reads both anyway, as hashing the new one does. Two different
texts share a digest with a chance of about 2**-64 per comparison.

Bounds: per host one entry per collector of its plan (names are constants in code); hosts leave with
:meth:`forget_except` (inventory reloads) and, past ``max_hosts``, the least recently probed host is
dropped; a result of more than ``max_series`` series is not kept (the series cap drops it anyway).
Key sets (the list of paths a host sent) are memoised up to ``max_key_sets``: a host whose set of
files changes at every scrape only costs the matching again. Each bound that bites is counted in
:attr:`evictions` (exported as ``optilab_exporter_cache_evictions_total``) and logged once.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family

log = logging.getLogger(__name__)

DEFAULT_MAX_HOSTS = 4096
DEFAULT_MAX_KEY_SETS = 256
DEFAULT_MAX_SERIES = 20_000


@lru_cache(maxsize=512)
def _reader(paths: tuple[str, ...], commands: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a source key is one of these declared paths (globs) or commands."""
    pattern = re.compile("|".join(f"(?:{fnmatch.translate(path)})" for path in paths)) if paths else None
    names = frozenset(f"cmd:{name}" for name in commands)

    def reads(key: str) -> bool:
        if key.startswith("cmd:"):
            return key in names
        return pattern is not None and pattern.match(key) is not None

    return reads


def declared_keys(collector: Collector, keys: tuple[str, ...]) -> tuple[str, ...]:
    """The keys among ``keys`` (an answer's source keys) that ``collector`` may read, in their order."""
    reads = _reader(collector.paths, tuple(name for name, _ in collector.commands))
    return tuple(key for key in keys if reads(key))


@dataclass(slots=True)
class _Entry:
    options: CollectorOptions
    keys: tuple[str, ...]
    digest: int  # hash() of the texts read (see the module docstring)
    ok: bool
    families: list[Family] | None  # None: not kept (see CollectCache)


class CollectCache:
    """``collect(host, collector, options, sources)`` with memo; see the module's docstring."""

    def __init__(
        self,
        max_hosts: int = DEFAULT_MAX_HOSTS,
        max_series: int = DEFAULT_MAX_SERIES,
        max_key_sets: int = DEFAULT_MAX_KEY_SETS,
        enabled: bool = True,
    ) -> None:
        self.max_hosts, self.max_series, self.max_key_sets = max_hosts, max_series, max_key_sets
        self.enabled = enabled  # False: every collector runs every time (bench/profile_probe.py compares)
        self._hosts: dict[str, dict[str, _Entry]] = {}
        self._key_sets: dict[tuple[str, ...], dict[str, tuple[str, ...]]] = {}
        self.hits = 0
        self.misses = 0
        #: bound that bit -> times: "hosts" (a host dropped), "key_sets" (matchings forgotten),
        #: "series" (a result too large to keep)
        self.evictions: dict[str, int] = {"hosts": 0, "key_sets": 0, "series": 0}
        self._logged: set[str] = set()

    def host(self, key: str, sources: Sources) -> HostView:
        """This host's memo for one probe of ``sources``."""
        entries = self._hosts.pop(key, None)  # re-inserted last: the dict's order is least recent first
        if entries is None:
            entries = {}
            while len(self._hosts) >= self.max_hosts:
                del self._hosts[next(iter(self._hosts))]
                self._evicted("hosts", f"more than {self.max_hosts} hosts; least recently probed dropped")
        self._hosts[key] = entries
        keys = tuple(sources)
        declared = self._key_sets.get(keys)
        if declared is None:
            if len(self._key_sets) >= self.max_key_sets:
                self._key_sets.clear()
                self._evicted("key_sets", f"more than {self.max_key_sets} distinct sets of source paths")
            declared = self._key_sets[keys] = {}
        return HostView(self, key, entries, sources, keys, declared)

    def forget_except(self, hosts: set[str]) -> None:
        for key in [k for k in self._hosts if k not in hosts]:
            del self._hosts[key]

    def __len__(self) -> int:
        return len(self._hosts)

    def _evicted(self, bound: str, why: str) -> None:
        self.evictions[bound] += 1
        if bound not in self._logged:
            self._logged.add(bound)
            log.warning("collector cache: %s (counted in optilab_exporter_cache_evictions_total; logged once)", why)


class HostView:
    """One host's memo during one probe."""

    __slots__ = ("_cache", "_declared", "_entries", "_host", "_keys", "_sources")

    def __init__(
        self,
        cache: CollectCache,
        host: str,
        entries: dict[str, _Entry],
        sources: Sources,
        keys: tuple[str, ...],
        declared: dict[str, tuple[str, ...]],
    ) -> None:
        self._cache, self._host, self._entries, self._sources = cache, host, entries, sources
        self._keys, self._declared = keys, declared

    def collect(self, collector: Collector, options: CollectorOptions) -> tuple[bool, list[Family], bool]:
        """(ok, families, served from memo). ``ok`` is False when the collector raised one of the
        errors a collector may raise on unusable sources (its families are then ``[]``)."""
        name = collector.name
        keys = self._declared.get(name)
        if keys is None:
            keys = self._declared[name] = declared_keys(collector, self._keys)
        sources = self._sources
        digest = hash(tuple(map(sources.__getitem__, keys)))
        entry = self._entries.get(name)
        same = (
            entry is not None
            and entry.keys == keys
            and entry.digest == digest
            and (entry.options is options or entry.options == options)
        )
        if same and entry is not None and entry.families is not None and self._cache.enabled:
            self._cache.hits += 1
            return entry.ok, entry.families, True
        self._cache.misses += 1
        try:
            families, ok = collector.collect(sources, options), True
        except (ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
            log.debug("probe %s: collector %s failed: %s", self._host, name, exc)
            families, ok = [], False
        # sources that changed since the last scrape will likely change again: their digest only
        keep = entry is None or same
        if keep and sum(len(family.samples) for family in families) > self._cache.max_series:
            self._entries.pop(name, None)
            self._cache._evicted("series", f"a {name} result of more than {self._cache.max_series} series not kept")
        else:
            self._entries[name] = _Entry(options, keys, digest, ok, families if keep else None)
        return ok, families, False
