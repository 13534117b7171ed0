"""The simulated host's "shell": it knows exactly the commands OptiLab sends and nothing else.

There is no shell here and nothing is executed. A collection script (any plan's, built by
:func:`exporter.command.build_script`) is recognised as a whole and answered with the same framed
output a real ``/bin/sh`` would print (:func:`labsim.render.render_script`); ``cat`` of each file the
simulator models also works alone (the batched-vs-separate benchmark needs that), as do the identity
commands discovery uses. Anything else gets what ``sh`` says about an unknown command: status 127
and a message on stderr.

:class:`ShellInput` is the long-lived ``/bin/sh`` of ``exporter/shellsession.py``: it reads exactly
the protocol the exporter writes to the shell's stdin (the nonce line, a function definition, the
constant call) and tells the server what to print; the answer is the same :func:`respond`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from optilab.exporter.command import BATCH_SCRIPT
from optilab.exporter.logincheck import LOGIN_CHECK_COMMAND, LOGIN_CHECK_OK
from optilab.exporter.shellsession import CALLS, NONCE_VARIABLE, SLOTS, command_of
from optilab.labsim.model import HostState
from optilab.labsim.render import FILES, render_osrelease, render_script, render_uname, render_who

#: single-command forms that some callers add around a command
_PREFIXES = ("LC_ALL=C ", "$T ", "timeout 5 ", "env ")
_UNAME_FIELD = {"-s": 0, "-n": 1, "-r": 2, "-v": 3, "-m": 4}


@dataclass(frozen=True)
class Reply:
    stdout: bytes
    stderr: bytes = b""
    status: int = 0


def render_batch(state: HostState, now: float) -> str:
    """What the default collection script (:data:`BATCH_SCRIPT`) prints on this host."""
    answer = render_script(BATCH_SCRIPT, state, now)
    assert answer is not None
    return answer


def _strip_prefixes(command: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if command.startswith(prefix):
                command, changed = command[len(prefix) :].lstrip(), True
    return command


def _single(command: str, state: HostState, now: float) -> str | None:
    """Output of one simple command, or None when this host does not know it."""
    command = _strip_prefixes(command.strip())
    words = command.split()
    if words[:1] == ["cat"] and len(words) == 2 and words[1] in FILES:
        return FILES[words[1]](state, now)
    if command == "who":
        return render_who(state, now)
    if words[:1] == ["uname"] and len(words) == 2 and words[1] in _UNAME_FIELD:
        return render_uname(state, now).splitlines()[_UNAME_FIELD[words[1]]] + "\n"
    if command in ("hostname", "cat /proc/sys/kernel/hostname"):
        return state.profile.hostname + "\n"
    if command in ("cat /etc/os-release", "cat /usr/lib/os-release"):
        return render_osrelease(state, now)
    if command in ("true", ":", ""):
        return ""
    return None


def respond(command: str, state: HostState, now: float) -> Reply:
    """Answer ``command`` as the host would; ``state`` must already be advanced to ``now``."""
    answer = render_script(command, state, now)
    if answer is not None:
        return Reply(answer.encode())
    if command == LOGIN_CHECK_COMMAND:
        return Reply(f"{LOGIN_CHECK_OK}\n".encode())
    out: list[str] = []
    for part in command.replace("\n", ";").split(";"):
        text = _single(part, state, now)
        if text is None:
            name = part.strip().split(" ", 1)[0] or part
            return Reply("".join(out).encode(), f"sh: 1: {name}: not found\n".encode(), 127)
        out.append(text)
    return Reply("".join(out).encode())


#: more unparsed input than this and the simulated shell gives up (the server closes the channel)
MAX_PENDING = 1 << 20
_SETUP = re.compile(rf"^{NONCE_VARIABLE}=([0-9a-f]{{32}}); [^\n]*\n")


class ShellInput:
    """The simulated ``/bin/sh``'s stdin: feed it bytes, get back what to do.

    :meth:`feed` returns steps: ``("ready", nonce_line)`` to print, or ``("call", command)`` to
    answer framed (:meth:`frame`). Input it cannot read raises ValueError (a real shell would print
    a syntax error to the discarded stderr; the server ends the session).
    """

    def __init__(self) -> None:
        self.pending = ""
        self.nonce: str | None = None
        self.defined = [""] * SLOTS  # the command each slot holds
        self.listed: list[str | None] = [None] * SLOTS  # the listing part each slot's list function holds

    def feed(self, text: str) -> list[tuple[str, str]]:
        self.pending += text
        steps: list[tuple[str, str]] = []
        while True:
            setup = _SETUP.match(self.pending)
            if setup:
                self.nonce = setup.group(1)
                self.pending = self.pending[setup.end() :]
                steps.append(("ready", f"{self.nonce} ready\n"))
                continue
            calls = [(at, slot) for slot, call in enumerate(CALLS) if (at := self.pending.find(call)) >= 0]
            if not calls or self.nonce is None:
                break
            at, slot = min(calls)
            head, self.pending = self.pending[:at], self.pending[at + len(CALLS[slot]) :]
            defined = command_of(head, self.listed[slot], slot) if head else None
            if defined is not None:
                self.defined[slot], self.listed[slot] = defined
            elif head:
                raise ValueError(f"the simulated shell cannot run {head[:40]!r}")
            steps.append(("call", self.defined[slot]))
        if len(self.pending) > MAX_PENDING:
            raise ValueError("too much input the simulated shell cannot read")
        return steps

    def frame(self, reply: Reply) -> bytes:
        """``reply`` as the shell prints it after a call line (stderr goes to /dev/null there)."""
        return f"{self.nonce} begin\n".encode() + reply.stdout + f"\n{self.nonce} end {reply.status}\n".encode()
