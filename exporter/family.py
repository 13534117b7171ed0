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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

TYPES = ("counter", "gauge", "untyped")
#: Size of the pieces :meth:`Exposition.chunks` hands to the HTTP server (one ``send`` each).
CHUNK_BYTES = 256 * 1024

#: Labels added to every sample at render time (``instance``, ``department``); else none.
Extra = Mapping[str, str]
NO_EXTRA: Extra = {}


@dataclass(slots=True)
class Family:
    """One metric family. ``name`` is the exposed sample name: a counter's ends in ``_total``.
    Once a collector has returned it, a family is not changed any more (:class:`Exposition` may keep
    its rendered text on it, and ``exporter/collectcache.py`` serves it again to later scrapes)."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)
    #: (extra labels' text, sample count, this family's sample lines with them), kept by
    #: :class:`Exposition` with ``reuse``
    rendered: tuple[str, int, str] | None = field(default=None, repr=False, compare=False)

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


#: Go's exponent suffixes for values from 1e6 to 2**53 (``e+06``... ``e+15``)
_EXPONENTS = tuple(f"e+{power:02d}" for power in range(16))


def format_value(value: float) -> str:
    """A sample value as Go (and prometheus_client) print it: ``+Inf``, ``NaN``, ``1.5e+09``."""
    if -1e6 < value < 1e6:  # the common case: Python's repr is Go's (NaN and infinities fail the test)
        return repr(value)
    if 0 < value < 9007199254740992.0 and value.is_integer():  # byte counters: the integer's digits
        digits = str(int(value))
        exponent = _EXPONENTS[len(digits) - 1]
        digits = digits.rstrip("0")
        return f"{digits[0]}.{digits[1:]}{exponent}" if len(digits) > 1 else digits + exponent
    if value != value:  # NaN
        return "NaN"
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to an exponent sooner than Python does
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
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


def _needs_escape(text: str) -> bool:
    return "\\" in text or '"' in text or "\n" in text


def _opening(name: str, labels: tuple[str, ...], values: tuple[str, ...]) -> str:
    """``name{a="x",b="y"``: a labelled sample's line up to its own labels' end."""
    if len(values) != len(labels):
        raise ValueError(f"{name}: sample with {len(values)} label values for labels {labels}")
    escaped = map(escape_label_value, values) if _needs_escape("".join(values)) else values
    return name + "{" + ",".join(f'{label}="{value}"' for label, value in zip(labels, escaped, strict=True))


class _Openings:
    """:func:`_opening` kept per family name, label names and values. A lab's probes repeat the same few
    thousand (cpu numbers, modes, device and mount names), so a sample's line is then one lookup and
    one concatenation instead of escaping and formatting its labels again. Bounded: cleared whole once
    it holds ``limit`` openings (hosts whose label values change at every scrape only cost the
    formatting again); an opening longer than ``longest`` characters is not kept, so a host's long
    label values cannot make it hold more than ``limit * longest`` characters."""

    def __init__(self, limit: int = 20_000, longest: int = 512) -> None:
        self.limit, self.longest = limit, longest
        self.count = 0
        self._by_shape: dict[tuple[str, tuple[str, ...]], dict[tuple[str, ...], str]] = {}

    def of(self, name: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], str]:
        """The kept openings of one family shape (label values -> opening)."""
        shape = (name, labels)
        kept = self._by_shape.get(shape)
        if kept is None:
            kept = self._by_shape[shape] = {}
        return kept

    def add(self, kept: dict[tuple[str, ...], str], name: str, labels: tuple[str, ...], values: tuple[str, ...]) -> str:
        opening = _opening(name, labels, values)
        if len(opening) > self.longest:
            return opening
        if self.count >= self.limit:
            for shape in self._by_shape.values():
                shape.clear()
            self.count = 0
        kept[values] = opening
        self.count += 1
        return opening


_OPENINGS = _Openings()


def _sample_text(family: Family, extra: tuple[tuple[str, str], ...], suffix: str, names: frozenset[str]) -> str:
    """The family's sample lines as one text: its labels in their order, then ``extra`` (values
    already escaped, ``suffix`` is their rendered ``,name="value"`` text) unless the family has a
    label of the same name (the lab gauges carry ``department`` themselves); ``names`` are extra's."""
    own, name, samples = family.labels, family.name, family.samples
    close = suffix + "} "
    if own and names and not names.isdisjoint(own):
        # the lab gauges: hostname, ip and department of their own, so their openings are this host's
        # alone and would only hold memory (~1 MB for 254 hosts); formatted every time
        close = "".join(f',{label}="{value}"' for label, value in extra if label not in own) + "} "
        return "".join([f"{_opening(name, own, values)}{close}{format_value(v)}\n" for values, v in samples])
    if not own:
        head = f"{name}{{{suffix[1:]}}} " if suffix else f"{name} "
        return "".join([f"{head}{repr(v) if -1e6 < v < 1e6 else format_value(v)}\n" for _values, v in samples])
    kept = _OPENINGS.of(name, own)
    lines = []
    for values, value in samples:
        opening = kept.get(values)
        if opening is None:
            opening = _OPENINGS.add(kept, name, own, values)
        lines.append(f"{opening}{close}{repr(value) if -1e6 < value < 1e6 else format_value(value)}\n")
    return "".join(lines)


class Exposition:
    """An exposition built host by host: :meth:`add` turns one probe's families into text lines at once
    (merged under their names), so a fan-out keeps strings, not families, until :meth:`render` —
    the garbage collector then has ~one list per metric name to walk instead of every sample.

    With ``reuse`` (the exporter's /probe), a family's text is kept on it (:attr:`Family.rendered`),
    and a family rendered before with the same extra labels is not rendered again: those are the
    families ``exporter/collectcache.py`` serves again when a host's sources did not change. The text
    lives as long as the family, so it is bounded by that cache's bounds. A family of one label-less
    sample (most of meminfo, netstat, vmstat) is rendered every time: that is one concatenation, no
    dearer than finding its kept text.
    """

    def __init__(self, reuse: bool = False) -> None:
        #: exposed name -> [its HELP and TYPE lines, then its sample lines from every family that has it]
        self._merged: dict[str, list[str]] = {}
        self._reuse = reuse
        self.reused = self.rendered = 0  # families, by how their text was made (with ``reuse``)

    def add(self, families: Iterable[Family], extra: Extra = NO_EXTRA) -> None:
        merged = self._merged
        escaped = tuple((label, escape_label_value(value)) for label, value in extra.items())
        suffix = "".join(f',{label}="{value}"' for label, value in escaped)
        names = frozenset(extra)
        if self._reuse:
            self._add_reusing(families, escaped, suffix, names)
            return
        braces = "{" + suffix[1:] + "} " if suffix else " "
        for family in families:
            samples = family.samples
            if not samples:
                continue
            lines = merged.get(family.name)
            if lines is None:
                lines = merged[family.name] = [_header(family.name, family.type, family.help)]
            if not family.labels and len(samples) == 1:  # most families: one label-less sample
                value = samples[0][1]
                lines.append(family.name + braces + (repr(value) if -1e6 < value < 1e6 else format_value(value)) + "\n")
                continue
            lines.append(_sample_text(family, escaped, suffix, names))

    def _add_reusing(
        self, families: Iterable[Family], extra: tuple[tuple[str, str], ...], suffix: str, names: frozenset[str]
    ) -> None:
        merged = self._merged
        reused = rendered = 0
        braces = "{" + suffix[1:] + "} " if suffix else " "
        for family in families:
            samples = family.samples
            if not samples:
                continue
            name = family.name
            lines = merged.get(name)
            if lines is None:
                lines = merged[name] = [_header(name, family.type, family.help)]
            if not family.labels and len(samples) == 1:  # one label-less sample: as cheap as its kept text
                value = samples[0][1]
                lines.append(name + braces + (repr(value) if -1e6 < value < 1e6 else format_value(value)) + "\n")
                rendered += 1
                continue
            done = family.rendered
            if done is not None and done[0] == suffix and done[1] == len(samples):
                reused += 1
                lines.append(done[2])
                continue
            text = _sample_text(family, extra, suffix, names)
            family.rendered = (suffix, len(samples), text)
            lines.append(text)
            rendered += 1
        self.reused += reused
        self.rendered += rendered

    def render(self) -> bytes:
        """The whole exposition as one ``bytes`` (:meth:`chunks` joined)."""
        return b"".join(self.chunks())

    def chunks(self, size: int = CHUNK_BYTES) -> list[bytes]:
        """The exposition as pieces of about ``size`` bytes, for a WSGI body that is written piece by
        piece: a fan-out's answer (~15 MB for 254 hosts) is then never copied into one ``bytes`` as
        well. Families of the same name are merged in first-seen order; the first family's HELP and
        TYPE win (the text format allows each name once). Families without samples are left out.
        A piece is encoded once it holds ``size`` characters of lines, and each name's lines are let go
        as they join a piece, so the answer never exists whole as lines and bytes at once (one
        encoding per piece, not per name: a single probe has ~240 names). An exposition renders once
        (it is empty afterwards)."""
        chunks: list[bytes] = []
        pending: list[str] = []
        held = 0
        merged = self._merged
        for name in list(merged):
            lines = merged.pop(name)
            pending += lines
            held += sum(map(len, lines))  # characters: bytes for the ASCII of nearly every answer
            if held >= size:
                chunks.append("".join(pending).encode("utf-8"))
                pending, held = [], 0
        if pending:
            chunks.append("".join(pending).encode("utf-8"))
        return chunks


def render_groups(groups: Iterable[tuple[Iterable[Family], Extra]]) -> bytes:
    """Render several probes' families (each with its own ``extra`` labels) as one exposition."""
    exposition = Exposition()
    for families, extra in groups:
        exposition.add(families, extra)
    return exposition.render()


def render(families: Iterable[Family], extra: Extra = NO_EXTRA) -> bytes:
    """Text format 0.0.4 of ``families``, every sample also labelled with ``extra``."""
    return render_groups(((families, extra),))
