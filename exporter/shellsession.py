"""A long-lived ``/bin/sh`` on one SSH channel: one framed request and one framed answer per scrape.

An exec per scrape makes the lab machine's sshd fork a session process, run the account's login
shell and tear both down again, every scrape. Instead the pool keeps one shell per host, started once
with the exec request :data:`SHELL_COMMAND` (no PTY, so no login rc files beyond what the account's
shell reads for ``sh -c``; the login shell ``exec``\\ s ``/bin/sh`` and is gone), and writes each
request to its stdin.

The protocol, all of it constant text apart from the nonce:

* at start the exporter sends :func:`setup_line`: it stores a fresh per-session nonce (128 random
  bits from :mod:`secrets`, hex) in a shell variable that is *not* exported, and prints
  ``<nonce> ready``. Nothing from configuration or from a request ever reaches the shell;
* a command is sent once per session as the bodies of two functions (:func:`definition`) that each
  call runs in a subshell: the shell parses them once, and the command cannot change the session's
  state (``cd``, variables); an ``exit`` in it ends only that subshell, and its answer, left without
  a status, is refused as a protocol error. A session holds :data:`SLOTS` commands at once, each in
  functions of its own (:class:`Definitions`): the collection script, the slow tier's and a
  ``collect[]`` job's, so a slow-tier refresh leaves the collection script defined, its list and its
  count as they were. A collection script's part above its :data:`~exporter.command.LIST_END` line
  (which files exist and are readable) becomes the slot's :data:`LIST_FUNCTION`, run once every
  :data:`LIST_CALLS` calls (and after each new listing part), its list kept in the slot's
  :data:`LIST_VARIABLE`; the part below becomes its :data:`FUNCTION`. So most scrapes skip the globs
  and the ``[ -r ]`` test of every declared path (~1 ms of the target's CPU); a device that appears
  shows within :data:`LIST_CALLS` scrapes (its /proc counters at once), one that goes away is simply not read
  (head skips what it cannot open, exporter/command.py), and collectors whose files come and go at
  any time (logins, textfiles) list theirs at every call;
* each scrape then sends its slot's line of :data:`CALLS`: the function runs inside ``$(...)`` with stdin from
  ``/dev/null`` (a shell reading commands from a pipe reads ahead, so a command reading stdin would
  eat the next request) and stderr to ``/dev/null`` (unread stderr would fill the channel's window),
  its output and status kept in a variable (``x`` then the status is appended so the output's own
  trailing newlines survive; NUL bytes do not, as in any shell variable); then one ``printf`` prints
  ``<nonce> begin``, the output, and ``\\n<nonce> end <status>``. The shell so holds one answer in
  memory (every file is capped by ``head -c``, exporter/command.py).

The answer is the bytes between the ``begin`` line and the last ``\\n<nonce> end`` line. A file on
the target that contains marker text cannot end the answer early: the nonce is printed only by
``printf``, a builtin, so it is never in a process's argv or environment, and it changes with every
session. Anything before ``begin`` or after the ``end`` line is a protocol error and resets the
session. A reply larger than the cap raises :class:`AnswerTooLargeError`.

The caller (``exporter/sshpool.py``) holds the deadline, serialises use of one session, and closes
it on any error; a closed session is replaced on the next scrape.
"""

from __future__ import annotations

import re
import secrets
from functools import lru_cache

import paramiko

from optilab.exporter.command import LIST_END
from optilab.exporter.ssherror import SshError

#: The exec request that starts the session (run by sshd through the account's login shell).
SHELL_COMMAND = "exec /bin/sh 2>/dev/null"
#: The variable that holds the nonce in the shell (not exported: children never see it).
NONCE_VARIABLE = "optilab_n"
#: Commands a session keeps defined at once, each in functions and variables of its own (slot ``i``:
#: ``optilab_answer<i>``, ``optilab_list<i>``, its list in ``optilab_l<i>``, its count in
#: ``optilab_k<i>``): the collection script, the slow tier's script, and the script of a second
#: Prometheus job that scrapes the host with a ``collect[]`` filter. With one slot, each slow-tier
#: refresh made the next scrape re-send and re-parse the 15 KB collection script and list its files
#: again; with two, a filtered job beside the full one did the same at every scrape. A slot is
#: defined only when a command first needs it; a fourth command takes the slot used least recently.
SLOTS = 3
FUNCTION = "optilab_answer"
#: The function that lists a collection script's readable files, and the variable that keeps its list.
LIST_FUNCTION = "optilab_list"
LIST_VARIABLE = "optilab_l"
#: Calls left before the list is made again (set to 0 when a new listing part is defined).
COUNTER = "optilab_k"
#: Scrapes per listing of the readable files: at a 15 s interval a new device's files show within ~2.5 min.
LIST_CALLS = 10
#: The answer is collected in a variable and printed by one ``printf``: streamed, it left the shell as
#: ~25 small writes that sshd (Nagle on, as for any session without a PTY) may hold for the client's
#: ACK, up to doubling a scrape's wall time in some runs (docs/exporter.md "Shell sessions").
ANSWER_VARIABLE = "optilab_a"


def call(slot: int) -> str:
    """The constant line that answers the command held in ``slot`` (listing first when its count is out)."""
    k, kept = f"{COUNTER}{slot}", f"{LIST_VARIABLE}{slot}"
    listing, answer = f"{LIST_FUNCTION}{slot}", f"{FUNCTION}{slot}"
    return (
        f'[ "${{{k}:-0}}" -gt 0 ] || {{ {kept}=$({listing} </dev/null 2>/dev/null); {k}={LIST_CALLS}; }}; '
        f"{k}=$(({k} - 1)); "
        f'{ANSWER_VARIABLE}=$({answer} </dev/null 2>/dev/null; echo "x$?"); '
        f'printf \'%s begin\\n%s\\n%s end %s\\n\' "${NONCE_VARIABLE}" "${{{ANSWER_VARIABLE}%x*}}" '
        f'"${NONCE_VARIABLE}" "${{{ANSWER_VARIABLE}##*x}}"; {ANSWER_VARIABLE}=\n'
    )


#: each slot's call line, constant text
CALLS = tuple(call(slot) for slot in range(SLOTS))


def _affixes(slot: int) -> tuple[str, str, str, str, str]:
    """(list function's start, its end, answer function's start, its line that reads the kept list, its end)."""
    return (
        f"{LIST_FUNCTION}{slot}() {{\n",
        f":\nprintf '%s' \"$l\"\n}}\n{COUNTER}{slot}=0\n",
        f"{FUNCTION}{slot}() {{\n",
        f"l=${LIST_VARIABLE}{slot}\n",
        "\n}\n",
    )


_AFFIXES = tuple(_affixes(slot) for slot in range(SLOTS))
_NONCE = re.compile(r"^[0-9a-f]{32}$")
#: Output a login shell may print before the session is ready (an rc file's echo); more is refused.
MAX_PREAMBLE = 64 * 1024
RECV = 65536


class ShellUnavailableError(SshError):
    """The account would not keep a shell (forced command, a shell that refuses or exits)."""

    def __init__(self, detail: str) -> None:
        super().__init__("protocol", detail)


class ShellDiedError(EOFError):
    """The session ended while a request was outstanding (killed shell, closed channel)."""


class AnswerTooLargeError(SshError):
    """An answer went past ``max_answer_bytes``; what was read is discarded."""

    def __init__(self, limit: int) -> None:
        super().__init__("protocol", f"answer larger than max_answer_bytes ({limit})")
        self.limit = limit


def setup_line(nonce: str) -> str:
    """The session's first line: store ``nonce`` (hex only, checked) and confirm with ``<nonce> ready``."""
    if not _NONCE.match(nonce):
        raise ValueError("a nonce is 32 lowercase hex digits")
    return f"{NONCE_VARIABLE}={nonce}; printf '%s ready\\n' \"${NONCE_VARIABLE}\"\n"


@lru_cache(maxsize=8)
def _parts(command: str) -> tuple[str, str, str]:
    """``command`` cut at its LIST_END line, the same strings for every session: each kept its own
    copy of the ~10 KB listing part it holds (2.8 MB for 254 hosts)."""
    return command.partition(LIST_END + "\n")


def definition(command: str, listed: str | None = None, slot: int = 0) -> tuple[str, str | None]:
    """The text that makes a session's ``slot`` hold ``command``, and the listing part it holds then.

    ``listed`` is the listing part the slot holds now. A command's part above its
    :data:`~exporter.command.LIST_END` line becomes the slot's list function (and the count of calls
    before the next listing starts again) only when it differs from ``listed``. The rest becomes the
    slot's answer function."""
    list_start, list_end, answer_start, read_list, answer_end = _AFFIXES[slot]
    listing, mark, answer = _parts(command)
    if not mark:
        return answer_start + command + answer_end, listed
    text = answer_start + read_list + answer + answer_end
    if listing == listed:
        return text, listed
    return list_start + listing + list_end + text, listing


def command_of(text: str, listed: str | None = None, slot: int = 0) -> tuple[str, str | None] | None:
    """The command whose :func:`definition` for ``slot`` ``text`` is (given the slot's ``listed``), and
    the listing part the slot holds after it; None when ``text`` is not such a definition (the
    simulator's shell answers the command itself)."""
    list_start, list_end, answer_start, read_list, answer_end = _AFFIXES[slot]
    if text.startswith(list_start):
        listed, found, text = text[len(list_start) :].partition(list_end)
        if not found:
            return None
    if not (text.startswith(answer_start) and text.endswith(answer_end)):
        return None
    body = text[len(answer_start) : -len(answer_end)]
    if not body.startswith(read_list):
        return body, listed
    if listed is None:
        return None  # reads a list the slot was never given
    return f"{listed}{LIST_END}\n{body[len(read_list) :]}", listed


class Definitions:
    """What a session's shell holds in its :data:`SLOTS` slots, and what to write for one answer."""

    def __init__(self, slots: int = SLOTS) -> None:
        if not 1 <= slots <= SLOTS:
            raise ValueError(f"a session has 1 to {SLOTS} slots")
        self.commands: list[str | None] = [None] * slots  # fewer slots: bench/script_pieces.py compares
        self.listed: list[str | None] = [None] * slots  # each slot's listing part (see definition)
        self._recent = list(range(slots))  # least recently used first

    def request(self, command: str) -> str:
        """The slot's call for ``command``, preceded by its definition when no slot holds it yet (in the
        slot used least recently)."""
        if command in self.commands:
            slot = self.commands.index(command)
            text = ""
        else:
            slot = self._recent[0]
            text, self.listed[slot] = definition(command, self.listed[slot], slot)
            self.commands[slot] = command
        self._recent.remove(slot)
        self._recent.append(slot)
        return text + CALLS[slot]


def split_answer(buffer: bytes | bytearray, nonce: str) -> tuple[bytes, int] | None:
    """``(data, status)`` from a complete framed answer, None while it is incomplete.

    Raises :class:`SshError` (``protocol``) for bytes before the ``begin`` line or after ``end``.
    """
    begin = f"{nonce} begin\n".encode()
    if not buffer.startswith(begin[: len(buffer)]):
        raise SshError("protocol", "shell answer does not start with the session's begin line")
    if len(buffer) < len(begin) or not buffer.endswith(b"\n"):
        return None
    end = f"\n{nonce} end ".encode()
    at = buffer.rfind(end, len(begin) - 1)
    if at < 0:
        return None
    status = buffer[at + len(end) : -1]
    if not status.isdigit():  # the buffer ends with a newline: the end line is whole
        if b"\n" in status:
            raise SshError("protocol", "bytes after the shell answer's end line")
        raise SshError("protocol", "the shell answer's end line has no status (the command exited)")
    with memoryview(buffer) as view:  # one copy of the answer, not a bytearray slice and then bytes
        return bytes(view[len(begin) : at]), int(status)


class ShellSession:
    """One running ``/bin/sh`` on one channel; not safe for concurrent use (the pool serialises)."""

    def __init__(self, channel: paramiko.Channel, nonce: str, max_bytes: int) -> None:
        self.channel, self.nonce, self.max_bytes = channel, nonce, max_bytes
        self.definitions = Definitions()
        self.answers = 0
        self.closed = False

    @classmethod
    def start(cls, transport: paramiko.Transport, max_bytes: int) -> ShellSession:
        """Open a channel, start the shell, wait for its ``ready`` line (the caller holds the deadline)."""
        channel = transport.open_session()
        session = cls(channel, secrets.token_hex(16), max_bytes)
        try:
            channel.exec_command(SHELL_COMMAND)
            channel.sendall(setup_line(session.nonce).encode())
            ready = f"{session.nonce} ready\n".encode()
            buffer = b""
            while not buffer.endswith(ready):
                chunk = session._recv()
                if not chunk:
                    raise ShellUnavailableError(
                        "the account's shell exited instead of running /bin/sh (forced command or a shell that refuses)"
                    )
                buffer += chunk
                if len(buffer) > MAX_PREAMBLE + len(ready):
                    raise ShellUnavailableError("no ready line from the shell (a forced command?)")
        except BaseException:
            session.close()
            raise
        return session

    def ask(self, command: str) -> str:
        """Send one request for ``command`` and read its framed answer to the end."""
        if self.closed:
            raise ShellDiedError("session already closed")
        self.channel.sendall(self.definitions.request(command).encode())
        buffer = bytearray()
        limit = self.max_bytes + 128  # the framing lines on top of the data
        while True:
            chunk = self._recv()
            if not chunk:
                raise ShellDiedError("the shell's channel closed mid-answer")
            buffer += chunk
            if len(buffer) > limit:
                raise AnswerTooLargeError(self.max_bytes)
            if chunk.endswith(b"\n"):
                answer = split_answer(buffer, self.nonce)
                if answer is not None:
                    self.answers += 1
                    return answer[0].decode("utf-8", "replace")

    def close(self) -> None:
        """Close the channel: sshd closes the shell's stdin and it exits (a running command first ends)."""
        if not self.closed:
            self.closed = True
            self.channel.close()

    def _recv(self) -> bytes:
        """Next stdout bytes; stderr (only the login shell's, before the redirect) is drained and dropped."""
        while self.channel.recv_stderr_ready():
            self.channel.recv_stderr(RECV)
        return self.channel.recv(RECV)
