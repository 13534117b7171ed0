"""Metric families of a probe and their text rendering (Prometheus exposition format 0.0.4).

A :class:`Family` is the plainest possible container: a name, a type, a HELP text, label names and
``(label values, value)`` samples. Collectors build fresh ones per scrape. :func:`render` turns
families into bytes in one pass: it merges families of the same name (a fan-out has one per host),
appends ``extra`` labels (``instance`` and ``department`` in a fan-out) to every sample at render
time, and escapes every label value and HELP text once (a family's labels come in its own order,
then ``extra``: no sorting per sample). prometheus_client's ``generate_latest`` did the same
work through per-sample objects and cost ~10× more for a 500-series host (bench/profile_probe.py);
prometheus_client still renders the exporter's own ``/metrics``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter

log = logging.getLogger(__name__)

TYPES = ("counter", "gauge", "untyped")

#: Labels added to every sample at render time (``instance``, ``department``); else none.
Extra = Mapping[str, str]
NO_EXTRA: Extra = {}


@dataclass(slots=True)
class Family:
    """One metric family. ``name`` is the exposed sample name: a counter's ends in ``_total``.
    Once a collector has returned it, a family is not changed any more (:class:`RenderMemo` keeps
    its rendered text on it, and ``exporter/collectcache.py`` serves it again to later scrapes)."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)
    #: (extra labels' text, this family's sample lines with them), set by :class:`RenderMemo`
    rendered: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    def add(self, values: Sequence[str], value: float) -> None:
        """Append one sample; ``values`` are the label values in the order of ``labels``."""
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name}: {len(values)} label values for labels {self.labels}")
        self.samples.append((tuple(values), float(value)))


def gauge(name: str, help_text: str, value: float | None = None) -> Family:
    """A label-less gauge, with its one sample when ``value`` is given."""
    family = Family(name, "gauge", help_text)
    if value is not None:
        family.samples.append(((), float(value)))
    return family


def counter(name: str, help_text: str, value: float | None = None) -> Family:
    """A label-less counter (``name`` ends in ``_total``), with its one sample when ``value`` is given."""
    family = Family(name, "counter", help_text)
    if value is not None:
        family.samples.append(((), float(value)))
    return family


def format_value(value: float) -> str:
    """A sample value as Go (and prometheus_client) print it: ``+Inf``, ``NaN``, ``1.5e+09``."""
    if -1e6 < value < 1e6:  # the common case: Python's repr is Go's (NaN and infinities fail the test)
        return repr(value)
    if value != value:  # NaN
        return "NaN"
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to an exponent sooner than Python does
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


@lru_cache(maxsize=8192)
def _header(name: str, kind: str, help_text: str) -> str:
    """HELP and TYPE lines (cached: every probe repeats the same few hundred families)."""
    return f"# HELP {name} {escape_help(help_text)}\n# TYPE {name} {kind}\n"


class _Merged:
    """All sample lines of one exposed name across the families (hosts) that carry it."""

    __slots__ = ("header", "lines")

    def __init__(self, family: Family) -> None:
        self.header = _header(family.name, family.type, family.help)
        self.lines: list[str] = []


def _needs_escape(text: str) -> bool:
    return "\\" in text or '"' in text or "\n" in text


def _sample_lines(family: Family, extra: tuple[tuple[str, str], ...], suffix: str, out: list[str]) -> None:
    """Append one text line per sample: the family's labels in their order, then ``extra`` (values
    already escaped, ``suffix`` is their rendered ``,name="value"`` text) unless the family has a
    label of the same name (the lab gauges carry ``department`` themselves)."""
    own, name = family.labels, family.name
    if extra and own and any(label in own for label, _ in extra):
        suffix = "".join(f',{label}="{value}"' for label, value in extra if label not in own)
    if not own:
        head = f"{name}{{{suffix[1:]}}} " if suffix else f"{name} "
        out.extend([head + format_value(value) + "\n" for _values, value in family.samples])
        return
    width = len(own)
    template = (name + "{" + ",".join(f'{label}="%s"' for label in own)
                + suffix.replace("%", "%%") + "} %s\n")
    for values, value in family.samples:
        if len(values) != width:
            raise ValueError(f"{name}: sample with {len(values)} label values for labels {own}")
        if _needs_escape("".join(values)):
            values = tuple(escape_label_value(v) for v in values)
        out.append(template % (*values, format_value(value)))


class Exposition:
    """An exposition built host by host: :meth:`add` turns one probe's families into text lines at once
    (merged under their names), so a fan-out keeps strings, not families, until :meth:`render` —
    the garbage collector then has ~one list per metric name to walk instead of every sample.
    With a :class:`RenderMemo`, a host's families are rendered from what its previous answer left
    (``memo_key`` names the host)."""

    def __init__(self, memo: RenderMemo | None = None) -> None:
        self._merged: dict[str, _Merged] = {}
        self._memo = memo

    def add(self, families: Iterable[Family], extra: Extra = NO_EXTRA, memo_key: str | None = None) -> None:
        merged = self._merged
        escaped = tuple((label, escape_label_value(value)) for label, value in extra.items())
        suffix = "".join(f',{label}="{value}"' for label, value in escaped)
        if self._memo is not None and memo_key is not None:
            self._memo.add(merged, families, escaped, suffix, memo_key)
            return
        braces = "{" + suffix[1:] + "} " if suffix else " "
        for family in families:
            samples = family.samples
            if not samples:
                continue
            entry = merged.get(family.name)
            if entry is None:
                entry = merged[family.name] = _Merged(family)
            if not family.labels and len(samples) == 1:  # most families: one label-less sample
                value = samples[0][1]
                entry.lines.append(family.name + braces + (repr(value) if -1e6 < value < 1e6
                                                           else format_value(value)) + "\n")
                continue
            _sample_lines(family, escaped, suffix, entry.lines)

    def render(self) -> bytes:
        """Families of the same name merged in first-seen order; the first family's HELP and TYPE win
        (the text format allows each name once). Families without samples are left out."""
        parts: list[str] = []
        for entry in self._merged.values():
            parts.append(entry.header)
            parts.extend(entry.lines)
        return "".join(parts).encode("utf-8")


_label_values = itemgetter(0)
_sample_value = itemgetter(1)


def _template(family: Family, extra: tuple[tuple[str, str], ...], suffix: str) -> str:
    """All sample lines of ``family`` with ``%s`` where each value goes (``%`` in the text doubled)."""
    lines: list[str] = []
    _sample_lines(Family(family.name, family.type, family.help, family.labels,
                         [(values, 0.0) for values, _ in family.samples]), extra, suffix, lines)
    return "".join(line[:-4].replace("%", "%%") + "%s\n" for line in lines)  # each ends in " 0.0\n"


_Memo = tuple[tuple[str, ...], tuple[tuple[str, ...], ...], str, tuple[float, ...], str | None]


class RenderMemo:
    """Per host (and set of extra labels) the template of each family of its previous answer.

    A family object rendered before with the same extra labels (one that
    :class:`~exporter.collectcache.CollectCache` serves again) reuses the text kept on it; a family
    with the same label names and the same label values in the same order as the host's previous one
    of that name (most: only values change) fills that template with its new values, or reuses the
    previous text when the values were the same in its last two answers too (only then is the text
    kept: changing values would make it a second copy of the template); anything else is rendered
    afresh. Each host
    keeps only the families of its latest answer (so a host whose family names keep changing
    replaces, never grows, its entry); hosts leave with :meth:`forget_except`, and past
    ``max_hosts`` the least recently rendered is dropped (counted in :attr:`evictions`, logged
    once). The entries are tuples of strings and floats, which the garbage collector stops tracking.
    """

    def __init__(self, max_hosts: int = 8192) -> None:
        self.max_hosts = max_hosts
        #: (host, extra text) -> family name -> (label names, label values, template, values, text)
        self._hosts: dict[tuple[str, str], dict[str, _Memo]] = {}
        self.evictions = 0
        self.reused = self.refilled = self.rendered = 0  # families, by how their text was made

    def add(self, merged: dict[str, _Merged], families: Iterable[Family], extra: tuple[tuple[str, str], ...],
            suffix: str, host: str) -> None:
        slot = (host, suffix)
        previous = self._hosts.pop(slot, None) or {}
        while len(self._hosts) >= self.max_hosts:
            del self._hosts[next(iter(self._hosts))]
            self.evictions += 1
            if self.evictions == 1:
                log.warning("render memo: more than %d hosts; least recently rendered dropped (counted in "
                            "optilab_exporter_cache_evictions_total; logged once)", self.max_hosts)
        current: dict[str, _Memo] = {}
        reused = refilled = rendered = 0
        for family in families:
            samples = family.samples
            if not samples:
                continue
            name = family.name
            entry = merged.get(name)
            if entry is None:
                entry = merged[name] = _Merged(family)
            done = family.rendered
            if done is not None and done[0] == suffix:
                reused += 1
                entry.lines.append(done[1])
                before = previous.get(name)
                if before is not None:
                    current[name] = before
                continue
            keys = tuple(map(_label_values, samples))
            values = tuple(map(_sample_value, samples))
            before = previous.get(name)
            stable = False  # values as last time: the text is kept for next time (else only the template)
            if before is not None and before[1] == keys and before[0] == family.labels:
                keys, template = before[1], before[2]  # the new keys die young: fewer live objects
                stable = before[3] == values
                if stable and before[4] is not None:  # rebuilt, but the same (success flags, health states)
                    text = before[4]
                    reused += 1
                else:
                    text = template % tuple(map(format_value, values))
                    refilled += 1
            else:
                template = _template(family, extra, suffix)
                text = template % tuple(map(format_value, values))
                rendered += 1
            current[name] = (family.labels, keys, template, values, text if stable else None)
            family.rendered = (suffix, text)
            entry.lines.append(text)
        self._hosts[slot] = current
        self.reused += reused
        self.refilled += refilled
        self.rendered += rendered

    def forget_except(self, hosts: set[str]) -> None:
        for slot in [slot for slot in self._hosts if slot[0] not in hosts]:
            del self._hosts[slot]

    def __len__(self) -> int:
        return len(self._hosts)


def render_groups(groups: Iterable[tuple[Iterable[Family], Extra]]) -> bytes:
    """Render several probes' families (each with its own ``extra`` labels) as one exposition."""
    exposition = Exposition()
    for families, extra in groups:
        exposition.add(families, extra)
    return exposition.render()


def render(families: Iterable[Family], extra: Extra = NO_EXTRA) -> bytes:
    """Text format 0.0.4 of ``families``, every sample also labelled with ``extra``."""
    return render_groups(((families, extra),))
