"""Seat state of a lab machine: who sits at it, and is the session in use, idle or locked.

Pure functions, text → data → state. Four sources of the one request feed it (exporter/collectors/seats.py):

* logind's session files, ``/run/systemd/sessions/<id>`` (read by the script's one ``head``; the glob
  :data:`SESSION_FILES` leaves out the sessions' ``<id>.ref`` FIFOs, which a reader would block on):
  ``KEY=value`` lines that logind itself writes (``CLASS``, ``TYPE``, ``REMOTE=0|1``, ``SEAT``,
  ``TTY``, ``STATE``...). logind heads them "private data, do not parse"; they are read here because
  ``loginctl list-sessions`` costs the lab machine ~4 ms of CPU per scrape (three processes and
  a D-Bus round trip) where the files cost nothing extra, and only the keys that ``loginctl
  show-session`` reports under the same names are used;
* :data:`SEATS_COMMAND` (a constant, shell builtins only) which prints::

      self <XDG_SESSION_ID of the probe's own session, empty when there is none>
      @loginctl                (only when a session needs logind's hints, see below)
      Id=3                     (``loginctl show-session -p Id -p LockedHint -p IdleHint -p IdleSinceHint``)
      ...

  The lock and idle hints live only in logind's memory, so ``loginctl show-session`` runs, once, for
  the sessions whose hints can change the state: not remote, of a user class, not closing, not ours.
  A machine nobody sits at (remote logins only, or none) runs no process for its seat;
* ``cmd:who``: ``who -u`` (plain ``who`` where -u is unknown: busybox), shared with the lab
  collector's ``optilab_logged_in_users``; not run on a host with neither utmp nor a logind session
  (a container), where it would print nothing;
* ``cmd:date``: the time collector's ``date``, for the age of ``IdleSinceHint``.

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
from collections.abc import Mapping
from dataclasses import dataclass

STATES = ("free", "in_use", "idle", "locked", "offline", "maintenance")
OCCUPIED = frozenset({"in_use", "idle", "locked"})
KINDS = ("local", "remote")

SESSION_DIR = "/run/systemd/sessions/"
#: logind's session ids end in a digit ("3", "c1"); the sessions' FIFOs are "<id>.ref".
SESSION_FILES = SESSION_DIR + "*[0-9]"
#: What ``show-session`` is asked for: only what the session files do not have.
HINTS = ("Id", "LockedHint", "IdleHint", "IdleSinceHint")
#: The section's command: constant, nothing interpolated, builtins only unless a local session needs
#: its hints. Session ids come from file names (data, passed as arguments after ``--``). A file is read
#: only up to its last needed key (dash's ``read`` takes a byte per syscall; logind writes ``STATE``,
#: ``REMOTE`` and ``CLASS`` in its first ten lines); one without ``REMOTE`` is taken as remote.
SEATS_COMMAND = (
    'echo "self ${XDG_SESSION_ID:-}"; set --; '
    f'for f in {SESSION_FILES}; do [ -f "$f" ] || continue; r=; c=; s=; '
    "while IFS='=' read -r k v; do case $k in REMOTE) r=$v;; CLASS) c=$v;; STATE) s=$v;; esac; "
    "case $r:$s:$c in ?*:?*:?*) break;; esac; "
    'done < "$f"; i=${f##*/}; '
    'case $r:$s:$c in 0:closing:*) ;; 0:*:user*) [ "$i" = "${XDG_SESSION_ID:-}" ] || set -- "$@" "$i";; esac; '
    "done; "
    "if [ $# -gt 0 ]; then echo @loginctl; loginctl show-session "
    + " ".join(f"-p {name}" for name in HINTS)
    + ' -- "$@"; fi'
)
UTMP = "/var/run/utmp"
#: ``who`` for the seats fallback and the lab collector's occupancy count: one process for both, and
#: none where it has nothing to read: who lists utmp (glibc's ``/var/run/utmp``) or, built with
#: systemd (coreutils 9.4+), logind's sessions; with neither file its output is empty anyway.
WHO_COMMAND = (
    f'w=; for f in {UTMP} {SESSION_FILES}; do [ -e "$f" ] && w=1 && break; done; '
    '[ -z "$w" ] || who -u 2>/dev/null || who'
)
#: logind's state-file keys -> ``loginctl show-session`` property names (values as show-session prints).
_FILE_KEYS = {"CLASS": "Class", "TYPE": "Type", "SEAT": "Seat", "TTY": "TTY", "STATE": "State"}

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


def parse_seats(
    text: str, session_files: Mapping[str, str] | None = None, who: str = "", now: float = 0.0
) -> SeatReading:
    """The seats section ``text`` with logind's ``session_files`` ({id: text}), ``who -u``'s output and
    the target's clock ``now``; raises ValueError when ``text`` is not the section's output at all.

    logind's view is used when it has session files (ours included: then nobody else is logged in);
    otherwise ``who``'s."""
    lines = text.splitlines()
    own = next((line[5:].strip() for line in lines[:3] if line.startswith("self ")), None)
    if own is None:
        raise ValueError("seats: missing 'self' line")
    if session_files:
        hints = ""
        if "@loginctl" in lines:
            start = lines.index("@loginctl") + 1
            hints = "\n".join(lines[start:])
        return SeatReading("loginctl", count_sessions(merge_session_files(session_files, hints), now, own))
    return SeatReading("who", parse_who_u(who))


def session_properties(text: str) -> dict[str, str]:
    """One logind session file as ``show-session`` properties (``REMOTE=1`` -> ``Remote=yes``)."""
    props = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        if key == "REMOTE":
            props["Remote"] = "yes" if value == "1" else "no"
        elif key in _FILE_KEYS:
            props[_FILE_KEYS[key]] = value
    return props


def _blocks(text: str) -> list[dict[str, str]]:
    """``show-session`` output of several sessions (blank-line separated) as property dicts."""
    return [
        dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        for block in re.split(r"\n\s*\n", text.strip())
    ]


def merge_session_files(session_files: Mapping[str, str], hints: str) -> list[dict[str, str]]:
    """``show-session``-style blocks: each session file's properties plus its ``Id`` and, where
    ``show-session`` answered for it, its hints. A session whose hints are missing (logind gone
    between the file read and the call) gets ``IdleHint=unknown``: counted, idle time unknown."""
    by_id = {props["Id"]: props for props in _blocks(hints) if props.get("Id")}
    blocks = []
    for session_id in sorted(session_files, key=lambda name: (len(name), name)):
        props = {"Id": session_id, **session_properties(session_files[session_id])}
        props.update(by_id.get(session_id, {"IdleHint": "unknown"}))
        blocks.append(props)
    return blocks


def parse_loginctl(text: str, now: float, own_session: str = "") -> tuple[SeatSession, ...]:
    """``loginctl show-session -p ...`` of several sessions (blank-line separated) → counted sessions."""
    return count_sessions(_blocks(text), now, own_session)


def count_sessions(blocks: list[dict[str, str]], now: float, own_session: str = "") -> tuple[SeatSession, ...]:
    """Sessions (``show-session`` properties each) → the ones counted, with their lock and idle state."""
    sessions = []
    for props in blocks:
        if not props:
            continue
        if own_session and props.get("Id") == own_session:
            continue
        if props.get("Class", "user") not in _USER_CLASSES or props.get("State") == "closing":
            continue
        remote = props.get("Remote") == "yes"
        local = not remote and (
            bool(props.get("Seat")) or props.get("Type") in _GRAPHICAL or bool(_LOCAL_LINE.match(props.get("TTY", "")))
        )
        if not local and not remote:
            continue  # a local non-seat session without a terminal: a cron job or su, not a person
        idle: float | None = None if props.get("IdleHint") == "unknown" else 0.0
        if props.get("IdleHint") == "yes":
            since = props.get("IdleSinceHint", "0")
            idle = max(0.0, now - int(since) / 1e6) if since.isdigit() and int(since) > 0 and now > 0 else None
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


def seat_state(
    reading: SeatReading | None, *, reachable: bool, maintenance: bool = False, idle_after_s: float = 300.0
) -> str | None:
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
