"""The ways a lab machine fails, as the exporter meets them, switchable per host while the lab runs.

Persistent modes stay until cleared (``none``); ``reboot`` and ``hostkey`` are one-shot events that
happen once and leave the host answering normally (rebooted, or with a key nobody trusts yet).
The answer-level modes (hang, slow, garbage, drop) bend an exec's answer and a long-lived shell's
answer alike (``labsim.server._answer``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from optilab.exporter.command import frame


class Mode(StrEnum):
    NONE = "none"  # answers normally
    REFUSE = "refuse"  # nothing listens: TCP connect is refused
    HANG = "hang"  # accepts TCP, then never says a word (also on open connections)
    SLOW = "slow"  # answers every command after ``delay`` seconds
    GARBAGE = "garbage"  # answers with text that is not what any shell prints
    AUTH = "auth"  # rejects the exporter's key
    DROP = "drop"  # cuts the connection halfway through a command's output
    REBOOT = "reboot"  # one-shot: uptime and counters start from zero, open sessions die
    HOSTKEY = "hostkey"  # one-shot: a new host key, open sessions die


ONE_SHOT = frozenset({Mode.REBOOT, Mode.HOSTKEY})
DEFAULT_DELAY = 2.0


@dataclass(frozen=True)
class Fault:
    mode: Mode = Mode.NONE
    delay: float = DEFAULT_DELAY

    def __str__(self) -> str:
        return f"{self.mode}:{self.delay:g}" if self.mode is Mode.SLOW else str(self.mode)


def parse_fault(text: str, delay: float | None = None) -> Fault:
    """``"slow:1.5"``, ``"hang"``… into a Fault; a clear error names the modes that exist."""
    name, _, arg = text.strip().lower().partition(":")
    try:
        mode = Mode(name)
    except ValueError:
        raise ValueError(f"unknown fault mode {name!r}; known: {', '.join(m.value for m in Mode)}") from None
    if arg:
        try:
            delay = float(arg)
        except ValueError:
            raise ValueError(f"fault delay must be seconds, got {arg!r}") from None
    if delay is not None and not 0 <= delay <= 3600:
        raise ValueError(f"fault delay must be 0..3600 s, got {delay}")
    return Fault(mode, DEFAULT_DELAY if delay is None else delay)


def garbage(paths: Iterable[str], commands: Iterable[str] = (), seed: int | None = None) -> bytes:
    """A program that runs the script but prints nonsense: every file framed, holding noise.

    Each file holds single-token lines, which no parser accepts, so the exporter sees a complete
    answer that fails to parse (reason ``parse``) rather than a cut connection.
    """
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789%$#/_~^"
    noise = {
        path: "".join(
            "~" + "".join(rng.choice(alphabet) for _ in range(rng.randint(5, 60))) + "\n"
            for _ in range(rng.randint(1, 4))
        )
        for path in paths
    }
    names = list(commands)
    noise.update({f"cmd:{name}": "~" + "".join(rng.choice(alphabet) for _ in range(20)) + "\n" for name in names})
    return frame(noise, names).encode()
