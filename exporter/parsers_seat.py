"""Seat state of a lab machine: who sits at it, and is the session in use, idle or locked.

Pure functions, text → data → state. The probe runs :data:`SEATS_COMMAND` (a constant) which prints

    now <unix seconds>
    self <XDG_SESSION_ID of the probe's own session, empty when there is none>
    @loginctl                      (only where logind answers)
    Id=3                           (``loginctl show-session`` of every session, blank-line separated)
    ...
    @who
    <``who -u`` output, or plain ``who`` where -u is unknown (busybox)>

logind is preferred: it knows the seat, remote sessions, ``LockedHint`` and ``IdleHint`` /
``IdleSinceHint``. Without it (containers, Alpine/busybox, no systemd) ``who -u``'s idle column
(time since the terminal's last input, as the tty's access time) stands in; lock state is then
unknown and counted as unlocked. The probe's own session (its ``XDG_SESSION_ID``) is never counted,
nor are logind's non-user classes (greeter, lock-screen, manager, background) or closing sessions.

One state per machine (:data:`STATES`): ``maintenance`` (the inventory says so) wins over
``offline`` (the probe failed), then the *local* sessions decide — any active one: ``in_use``; only
idle ones (no input for ``idle_after_s``): ``idle``; only locked ones: ``locked``; none: ``free``.
Remote SSH sessions do not occupy the seat (a person can sit down), they are counted by kind only.
No user name ever leaves this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATES = ("free", "in_use", "idle", "locked", "offline", "maintenance")
OCCUPIED = frozenset({"in_use", "idle", "locked"})
KINDS = ("local", "remote")

#: The section's command: constant, nothing interpolated. awk and who exist in coreutils and busybox.
SEATS_COMMAND = (
    'echo "now $(date +%s)"; echo "self ${XDG_SESSION_ID:-}"; '
    "i=$(loginctl list-sessions --no-legend 2>/dev/null | awk '{print $1}'); "
    'if [ -n "$i" ]; then echo @loginctl; loginctl show-session $i -p Id -p Class -p Type -p Remote '
    "-p Seat -p TTY -p State -p LockedHint -p IdleHint -p IdleSinceHint; fi; "
    "echo @who; who -u 2>/dev/null || who"
)

_USER_CLASSES = frozenset({"user", "user-early", "user-incomplete"})
_GRAPHICAL = frozenset({"x11", "wayland", "mir"})
_LOCAL_LINE = re.compile(r"^(tty\d+|console|:\d+(\.\d+)?|seat\d+)$")
_CLOCK = re.compile(r"^(\d{1,3}):(\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTHS = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}


@dataclass(frozen=True)
class SeatSession:
    """One login: ``kind`` local (at the seat) or remote; idle seconds since input, None when unknown."""

    kind: str
    locked: bool = False
    idle_seconds: float | None = None


@dataclass(frozen=True)
class SeatReading:
    """What the seats section said: the source used (``loginctl`` or ``who``) and the sessions counted."""

    source: str
    sessions: tuple[SeatSession, ...]

    def count(self, kind: str) -> int:
        return sum(1 for s in self.sessions if s.kind == kind)


def parse_seats(text: str) -> SeatReading:
    """Parse the section; raises ValueError when it is not the section's output at all."""
    lines = text.splitlines()
    header = dict(line.partition(" ")[::2] for line in lines[:2])
    if "now" not in header or "@who" not in lines:
        raise ValueError("seats: missing 'now' line or '@who' marker")
    now = float(header["now"])
    own = header.get("self", "").strip()
    who_at = lines.index("@who")
    if "@loginctl" in lines[:who_at]:
        start = lines.index("@loginctl") + 1
        return SeatReading("loginctl", parse_loginctl("\n".join(lines[start:who_at]), now, own))
    return SeatReading("who", parse_who_u("\n".join(lines[who_at + 1:])))


def parse_loginctl(text: str, now: float, own_session: str = "") -> tuple[SeatSession, ...]:
    """``loginctl show-session -p ...`` of several sessions (blank-line separated) → counted sessions."""
    sessions = []
    for block in re.split(r"\n\s*\n", text.strip()):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if not props:
            continue
        if own_session and props.get("Id") == own_session:
            continue
        if props.get("Class", "user") not in _USER_CLASSES or props.get("State") == "closing":
            continue
        remote = props.get("Remote") == "yes"
        local = not remote and (bool(props.get("Seat")) or props.get("Type") in _GRAPHICAL
                                or bool(_LOCAL_LINE.match(props.get("TTY", ""))))
        if not local and not remote:
            continue  # a local non-seat session without a terminal: a cron job or su, not a person
        idle: float | None = 0.0
        if props.get("IdleHint") == "yes":
            since = props.get("IdleSinceHint", "0")
            idle = max(0.0, now - int(since) / 1e6) if since.isdigit() and int(since) > 0 else None
        sessions.append(SeatSession("remote" if remote else "local", props.get("LockedHint") == "yes", idle))
    return tuple(sessions)


def _idle_field(value: str) -> float | None:
    """``who -u`` idle column: ``.`` (input in the last minute), ``old`` (over a day), ``HH:MM``."""
    if value == ".":
        return 0.0
    if value == "old":
        return 86400.0
    if match := _CLOCK.match(value):
        return int(match.group(1)) * 3600.0 + int(match.group(2)) * 60.0
    return None


def parse_who_u(text: str) -> tuple[SeatSession, ...]:
    """GNU ``who -u`` (``user line date time idle pid (host)``) or busybox ``who``
    (header ``USER TTY IDLE TIME HOST``; ``user line idle month day time host``)."""
    sessions = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[:2] == ["USER", "TTY"]:
            continue
        tty, host = words[1], ""
        if words[-1].startswith("(") and words[-1].endswith(")"):
            host = words[-1][1:-1]
        idle: float | None = None
        if _DATE.match(words[2]) and len(words) >= 5:  # GNU: date, time, then idle
            idle = _idle_field(words[4])
        elif len(words) >= 4 and words[3] in _MONTHS:  # busybox: idle before the date
            idle = _idle_field(words[2])
            host = words[6] if len(words) >= 7 else ""
        if _LOCAL_LINE.match(tty):
            remote = False
        elif host and not host.startswith(":") and not _LOCAL_LINE.match(host) and " " not in host:
            remote = True  # a pseudo-terminal logged in from another machine
        else:
            continue  # a terminal window (pts) of the seat's own user: the seat is counted once
        sessions.append(SeatSession("remote" if remote else "local", False, idle))
    return tuple(sessions)


def seat_state(reading: SeatReading | None, *, reachable: bool, maintenance: bool = False,
               idle_after_s: float = 300.0) -> str | None:
    """The machine's one state; None when reachable but the seats section could not be read."""
    if maintenance:
        return "maintenance"
    if not reachable:
        return "offline"
    if reading is None:
        return None
    local = [s for s in reading.sessions if s.kind == "local"]
    if not local:
        return "free"
    unlocked = [s for s in local if not s.locked]
    if any(s.idle_seconds is None or s.idle_seconds < idle_after_s for s in unlocked):
        return "in_use"
    return "idle" if unlocked else "locked"
