"""Query-string parsing: pure functions from request arguments to typed values, or a 400.

Every value a client sends passes through here before it reaches SQL, so bad input is answered
with a JSON 400 that names the parameter (never a database error turned into a 500). Times accept
ISO-8601, Unix seconds, ``now`` and relative forms like ``-24h`` / ``now-30m``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar, overload

from werkzeug.exceptions import BadRequest

MAX_TEXT = 200
MAX_OFFSET = 10_000_000
# Far enough for any lab history, near enough that date arithmetic and PostgreSQL never overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_SPAN = timedelta(days=3660)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d{1,9})([smhdw]?)$")
_RELATIVE = re.compile(r"^(?:now)?\s*([+-])\s*(\d{1,9})([smhdw])$")
F = TypeVar("F", bound=Callable[..., object])
_EPOCH = re.compile(r"^\d{1,12}(\.\d{1,9})?$")


def bad(name: str, message: str) -> BadRequest:
    """A 400 whose message starts with the parameter name, so clients see what to fix."""
    return BadRequest(f"{name}: {message}")


def text(args: Mapping[str, str], name: str, max_len: int = MAX_TEXT) -> str | None:
    """An optional free-text value; control characters (NUL first of all) are refused."""
    value = args.get(name)
    if value is None:
        return None
    if len(value) > max_len:
        raise bad(name, f"longer than {max_len} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise bad(name, "contains control characters")
    return value


def integer(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = args.get(name)
    if value is None or value == "":
        return default
    if not re.fullmatch(r"[+-]?\d{1,12}", value.strip()):
        raise bad(name, f"expected an integer between {low} and {high}")
    number = int(value)
    if not low <= number <= high:
        raise bad(name, f"expected an integer between {low} and {high}, got {number}")
    return number


@overload
def choice(args: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str: ...
@overload
def choice(args: Mapping[str, str], name: str, choices: tuple[str, ...], default: None) -> str | None: ...
def choice(args: Mapping[str, str], name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    """One of ``choices``, or ``default`` when absent or empty (a str default: never None)."""
    value = args.get(name)
    if value is None or value == "":
        return default
    if value not in choices:
        raise bad(name, f"expected one of {', '.join(choices)}")
    return value


def duration(value: str, name: str) -> timedelta:
    """``90`` (seconds), ``90s``, ``5m``, ``2h``, ``1d``, ``1w``; strictly positive."""
    match = _DURATION.match(value.strip())
    if not match:
        raise bad(name, "expected a duration such as 60, 60s, 5m, 1h or 1d")
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0 or seconds > MAX_SPAN.total_seconds():
        raise bad(name, "duration must be positive and at most 3660 days")
    return timedelta(seconds=seconds)


def timestamp(value: str, name: str, now: datetime) -> datetime:
    """Parse an absolute or relative time; naive ISO times are taken as UTC."""
    raw = value.strip()
    if raw == "now":
        return now
    if match := _RELATIVE.match(raw):
        sign, amount, unit = match.groups()
        seconds = int(amount) * _UNITS[unit]
        if seconds > (LATEST - EARLIEST).total_seconds():
            raise bad(name, "relative time out of range")
        delta = timedelta(seconds=seconds)
        moment = now - delta if sign == "-" else now + delta
    elif _EPOCH.match(raw):
        epoch = float(raw)
        if epoch > (LATEST - EARLIEST).total_seconds():
            raise bad(name, "time out of range")
        moment = EARLIEST + timedelta(seconds=epoch)
    else:
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise bad(name, "expected ISO-8601, Unix seconds, 'now' or a relative time like -24h") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            raise bad(name, "time out of range") from None
    if not EARLIEST <= moment <= LATEST:
        raise bad(name, f"time out of range ({EARLIEST.year}..{LATEST.year})")
    return moment


def time_range(args: Mapping[str, str], now: datetime, default_span: timedelta) -> tuple[datetime, datetime]:
    """``start``/``end`` (defaults: ``end=now``, ``start=end-default_span``); start must precede end."""
    end = timestamp(args["end"], "end", now) if args.get("end") else now
    start = timestamp(args["start"], "start", now) if args.get("start") else max(end - default_span, EARLIEST)
    if start >= end:
        raise bad("start", "must be before end")
    if end - start > MAX_SPAN:
        raise bad("start", "range longer than 3660 days")
    return start, end


def pagination(args: Mapping[str, str], default: int = 100, maximum: int = 1000) -> tuple[int, int]:
    """``limit`` (1..maximum) and ``offset`` (0..10,000,000)."""
    return integer(args, "limit", default, 1, maximum), integer(args, "offset", 0, 0, MAX_OFFSET)


def like_pattern(value: str) -> str:
    """A substring ILIKE pattern with the client's ``%``, ``_`` and ``\\`` taken literally."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def accepts(*names: str) -> Callable[[F], F]:
    """Declare the query parameters a view understands; any other one is a 400 (see `check_known`)."""

    def mark(view: F) -> F:
        view.optilab_params = frozenset(names)  # type: ignore[attr-defined]
        return view

    return mark


def check_known(args: Mapping[str, str], view: object) -> None:
    """400 for a parameter the view does not declare: a typo (``in_use=false``) must not be ignored."""
    allowed: frozenset[str] = getattr(view, "optilab_params", frozenset())
    unknown = sorted(set(args) - allowed)
    if unknown:
        listed = ", ".join(sorted(allowed)) or "none"
        raise bad(unknown[0], f"unknown query parameter (this endpoint accepts: {listed})")
