"""Helpers shared by the /sys collectors: group attribute files per device, parse sysfs numbers.

A /sys collector declares one glob per attribute (``/sys/class/net/*/mtu``); the target sends the
files that exist and could be read (an attribute the driver refuses, EINVAL, is simply absent,
as node_exporter skips it). :func:`devices` turns those sources back into ``{device: {attr: text}}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from optilab.exporter.collectors.base import Sources, under

_GO_INT = re.compile(r"^[+-]?(0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[1-9][0-9]*|0)$")


def devices(sources: Sources, prefix: str, attrs: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """``{device: {attr: value}}`` for every source ``prefix + device + "/" + attr`` (values stripped
    as node_exporter's ``SysReadFile`` does). ``attrs`` limits the attributes taken; ``attr`` may
    itself contain a ``/`` (``device/model``)."""
    wanted = None if attrs is None else set(attrs)
    found: dict[str, dict[str, str]] = {}
    for path, text in under(sources, prefix).items():
        device, sep, attr = path[len(prefix) :].partition("/")
        if not sep or not device or (wanted is not None and attr not in wanted):
            continue
        found.setdefault(device, {})[attr] = text.strip()
    return found


def go_int(text: str) -> int | None:
    """An integer as Go's ``strconv.ParseInt(s, 0, 64)`` reads it (``0x1003``, ``010`` octal); else None."""
    text = text.strip()
    if text.isascii() and text.isdigit() and (text[0] != "0" or len(text) == 1):
        return int(text)  # the common case: plain decimal
    if not _GO_INT.match(text):
        return None
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and body[1] in "0123456789":
        return sign * int(body[1:], 8)
    return sign * int(body, 0)


def uint(text: str) -> int | None:
    """An unsigned decimal, as procfs' ``ReadUintFromFile``; else None."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def number(text: str) -> float | None:
    """A float as Go's ``strconv.ParseFloat``; else None."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value


def globs(prefix: str, attrs: Iterable[str]) -> tuple[str, ...]:
    """``prefix + attr`` for each attribute: the constant paths a collector declares."""
    return tuple(prefix + attr for attr in attrs)
