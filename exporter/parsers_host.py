"""Pure parsers for the host's identity and occupancy: os-release and ``who``.

These come from userland tools, so they differ between GNU coreutils and busybox; each parser
accepts both (busybox ``who`` may print a header, or nothing at all where musl keeps no utmp).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Session:
    """One login listed by ``who``: a user on a terminal, from a remote host if any."""

    user: str
    tty: str
    host: str = ""


def _unquote(value: str) -> str:
    """os-release values follow shell quoting rules (os-release(5)); shlex undoes them."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"bad quoting in os-release value {value!r}") from exc
    return " ".join(words)


@lru_cache(maxsize=256)
def _parse_osrelease(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(_osrelease_fields(text).items())


def parse_osrelease(text: str) -> dict[str, str]:
    """Parse ``KEY=value`` lines of /etc/os-release (cached by text: it does not change between scrapes)."""
    return dict(_parse_osrelease(text))


def _osrelease_fields(text: str) -> dict[str, str]:
    """Parse ``KEY=value`` lines of /etc/os-release; comments and blank lines are allowed, ``ID`` is required.

    ``ID`` defaults to ``linux`` per os-release(5), but a file without it is more likely a wrong file.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"malformed os-release line: {line!r}")
        fields[key] = _unquote(value)
    if "ID" not in fields:
        raise ValueError("os-release without ID")
    return fields


_WHO_HEADERS = ("USER", "NAME")
_WHO_HOST = re.compile(r"\(([^()]*)\)\s*$")


def parse_who(text: str) -> tuple[Session, ...]:
    """Sessions listed by ``who``; empty output is valid and means nobody is logged in.

    GNU who prints ``user tty date time [(host)]``; busybox ``user tty idle time host`` after an
    optional ``USER TTY ...`` header. Only user, tty and a parenthesised host are read.
    """
    sessions = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0] in _WHO_HEADERS:
            continue
        if len(fields) < 2:
            raise ValueError(f"malformed who line: {line!r}")
        host = _WHO_HOST.search(line)
        sessions.append(Session(user=fields[0], tty=fields[1], host=host.group(1) if host else ""))
    return tuple(sessions)
