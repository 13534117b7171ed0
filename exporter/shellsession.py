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
  a status, is refused as a protocol error. A collection script's part above its
  :data:`~exporter.command.LIST_END` line (which files exist and are readable) becomes
  :data:`LIST_FUNCTION`, run once every :data:`LIST_CALLS` calls (and after each new listing part:
  a slow-tier command defined in between keeps the list and its count), its list kept in
  :data:`LIST_VARIABLE`; the part below becomes :data:`FUNCTION`. So most scrapes skip
  the globs and the ``[ -r ]`` test of every declared path (~1 ms of the target's CPU); a device
  that appears shows within :data:`LIST_CALLS` scrapes (its /proc counters at once), one that goes
  away is simply not read (head skips what it cannot open, exporter/command.py), and collectors whose
  files come and go at any time (logins, textfiles) list theirs at every call;
* each scrape then sends :data:`CALL`: the function runs inside ``$(...)`` with stdin from
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

import paramiko

from optilab.exporter.command import LIST_END
from optilab.exporter.ssherror import SshError

#: The exec request that starts the session (run by sshd through the account's login shell).
SHELL_COMMAND = "exec /bin/sh 2>/dev/null"
#: The variable that holds the nonce in the shell (not exported: children never see it).
NONCE_VARIABLE = "optilab_n"
FUNCTION = "optilab_answer"
#: The function that lists a collection script's readable files, and the variable that keeps its list.
LIST_FUNCTION = "optilab_list"
LIST_VARIABLE = "optilab_l"
#: Calls left before the list is made again (set to 0 when a new listing part is defined).
COUNTER = "optilab_k"
#: Scrapes per listing of the readable files: at a 15 s interval a new device's files show within ~2.5 min.
LIST_CALLS = 10
_LIST_PREFIX = f"{LIST_FUNCTION}() {{\n"
_LIST_SUFFIX = f":\nprintf '%s' \"$l\"\n}}\n{COUNTER}=0\n"
_ANSWER_PREFIX = f"{FUNCTION}() {{\n"
#: the first line of the answer function of a command with a listing part: it reads the kept list
_READ_LIST = f"l=${LIST_VARIABLE}\n"
_ANSWER_SUFFIX = "\n}\n"
#: The answer is collected in a variable and printed by one ``printf``: streamed, it left the shell as
#: ~25 small writes that sshd (Nagle on, as for any session without a PTY) may hold for the client's
#: ACK, up to doubling a scrape's wall time in some runs (docs/exporter.md "Shell sessions").
ANSWER_VARIABLE = "optilab_a"
CALL = (
    f'[ "${{{COUNTER}:-0}}" -gt 0 ] || {{ {LIST_VARIABLE}=$({LIST_FUNCTION} </dev/null 2>/dev/null); '
    f"{COUNTER}={LIST_CALLS}; }}; {COUNTER}=$(({COUNTER} - 1)); "
    f'{ANSWER_VARIABLE}=$({FUNCTION} </dev/null 2>/dev/null; echo "x$?"); '
    f'printf \'%s begin\\n%s\\n%s end %s\\n\' "${NONCE_VARIABLE}" "${{{ANSWER_VARIABLE}%x*}}" '
    f'"${NONCE_VARIABLE}" "${{{ANSWER_VARIABLE}##*x}}"; {ANSWER_VARIABLE}=\n'
)
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


def definition(command: str, listed: str | None = None) -> tuple[str, str | None]:
    """The text that makes a session run ``command``, and the listing part the session holds then.

    ``listed`` is the listing part the session holds now. A command's part above its
    :data:`~exporter.command.LIST_END` line becomes :data:`LIST_FUNCTION` (and the count of calls
    before the next listing starts again) only when it differs from ``listed``: a slow-tier command
    in between leaves the collection script's list and its count as they were. The rest becomes
    :data:`FUNCTION`."""
    listing, mark, answer = command.partition(LIST_END + "\n")
    if not mark:
        return _ANSWER_PREFIX + command + _ANSWER_SUFFIX, listed
    text = _ANSWER_PREFIX + _READ_LIST + answer + _ANSWER_SUFFIX
    if listing == listed:
        return text, listed
    return _LIST_PREFIX + listing + _LIST_SUFFIX + text, listing


def command_of(text: str, listed: str | None = None) -> tuple[str, str | None] | None:
    """The command whose :func:`definition` ``text`` is (given the session's ``listed``), and the
    listing part the session holds after it; None when ``text`` is not a definition (the simulator's
    shell answers the command itself)."""
    if text.startswith(_LIST_PREFIX):
        listed, found, text = text[len(_LIST_PREFIX) :].partition(_LIST_SUFFIX)
        if not found:
            return None
    if not (text.startswith(_ANSWER_PREFIX) and text.endswith(_ANSWER_SUFFIX)):
        return None
    body = text[len(_ANSWER_PREFIX) : -len(_ANSWER_SUFFIX)]
    if not body.startswith(_READ_LIST):
        return body, listed
    if listed is None:
        return None  # reads a list the session was never given
    return f"{listed}{LIST_END}\n{body[len(_READ_LIST) :]}", listed


def request(command: str, defined: str | None, listed: str | None = None) -> str:
    """What to write for one answer of ``command``: the call, preceded by its definition when the
    session does not hold this command yet (``listed``: the listing part it holds)."""
    if command == defined:
        return CALL
    return definition(command, listed)[0] + CALL


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
        self.defined: str | None = None
        self.listed: str | None = None  # the listing part its optilab_list holds (see definition)
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
        if command == self.defined:
            message = CALL
        else:
            text, self.listed = definition(command, self.listed)
            message = text + CALL
        self.defined = command
        self.channel.sendall(message.encode())
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
