"""Speak real SSH for one simulated host: paramiko's server side, one greenlet per connection.

The exporter must meet the same protocol it meets in a real lab (key exchange, host key check,
public-key auth, one channel per exec, exit status), so nothing here is faked above the shell: the
faults act where a real machine would fail (the listening socket, the handshake, auth, the command's
output). Both ways the exporter reads a host work: one exec per command (:func:`run_command`) and
the long-lived shell (:func:`run_shell`, started by the exec request
``exporter.shellsession.SHELL_COMMAND``); every fault bends an answer the same way in both
(:func:`_answer`). Requires gevent's monkey patching before paramiko is imported (see labsim.cli).
"""

from __future__ import annotations

import socket
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import paramiko
from gevent.server import StreamServer
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

from optilab.exporter.command import DEFAULT_COMMANDS, DEFAULT_PATHS
from optilab.exporter.shellsession import SHELL_COMMAND
from optilab.labsim.faults import Fault, Mode, garbage
from optilab.labsim.keys import load_or_create, replace_key
from optilab.labsim.model import HostProfile, HostState
from optilab.labsim.shell import Reply, ShellInput, respond

HANG_LIMIT = 600.0  # a hung host holds a connection at most this long, so nothing waits forever
POLL = 0.1


@dataclass
class SimHost:
    """One lab machine: its profile, evolving state, host key, current fault and open transports."""

    profile: HostProfile
    key_path: Path
    clock: Callable[[], float]
    state: HostState = field(init=False)
    key: paramiko.PKey = field(init=False)
    fault: Fault = field(default_factory=Fault)
    listener: StreamServer | None = None
    transports: weakref.WeakSet[paramiko.Transport] = field(default_factory=weakref.WeakSet)
    connections: int = 0
    execs: int = 0
    shells: int = 0  # long-lived shell sessions started

    def __post_init__(self) -> None:
        self.key = load_or_create(self.key_path, self.profile.hostname)
        self.state = HostState.boot(self.profile, self.clock())

    def answer(self, command: str) -> Reply:
        now = self.clock()
        self.state.advance(now)
        self.execs += 1
        return respond(command, self.state, now)

    def drop_sessions(self) -> None:
        """Close every open connection, as a reboot or a re-keyed sshd would."""
        for transport in list(self.transports):
            transport.close()

    def reboot(self) -> None:
        self.state.reboot(self.clock())
        self.drop_sessions()

    def change_key(self) -> None:
        self.key = replace_key(self.key_path)
        self.drop_sessions()


class SessionServer(paramiko.ServerInterface):
    """Policy of one connection: who may log in, which channels and requests are allowed."""

    def __init__(self, host: SimHost, user: str, authorized: paramiko.PKey) -> None:
        self.host = host
        self.user = user
        self.authorized = authorized.get_base64()

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if self.host.fault.mode is Mode.AUTH:
            return AUTH_FAILED
        if username == self.user and key.get_base64() == self.authorized:
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        # The transport's own greenlet must keep reading, so the command runs in a new one.
        text = command.decode("utf-8", "replace")
        gevent.spawn(run_shell if text == SHELL_COMMAND else run_command, self.host, channel, text)
        return True


def _wait_while(host: SimHost, mode: Mode, limit: float = HANG_LIMIT) -> None:
    deadline = time.monotonic() + limit
    while host.fault.mode is mode and time.monotonic() < deadline:
        gevent.sleep(POLL)


def _answer(
    host: SimHost, channel: paramiko.Channel, command: str, frame: Callable[[Reply], bytes] | None = None
) -> bool:
    """Answer ``command`` on ``channel``, bent by the host's current fault; ``frame`` wraps the reply
    as the long-lived shell prints it (None: an exec's plain stdout, stderr and exit status).
    False when the channel is finished (hung, dropped)."""
    fault = host.fault
    if fault.mode is Mode.HANG:
        _wait_while(host, Mode.HANG)
        return False
    if fault.mode is Mode.SLOW:
        gevent.sleep(fault.delay)
    if fault.mode is Mode.GARBAGE:
        reply = Reply(garbage(DEFAULT_PATHS, DEFAULT_COMMANDS, seed=host.execs))
        host.execs += 1
    else:
        reply = host.answer(command)
    payload = reply.stdout if frame is None else frame(reply)
    if fault.mode is Mode.DROP:
        channel.sendall(payload[: len(payload) // 3])
        gevent.sleep(0.05)  # let the partial output leave before the connection dies
        channel.get_transport().close()
        return False
    channel.sendall(payload)
    if frame is None:
        if reply.stderr:
            channel.sendall_stderr(reply.stderr)
        channel.send_exit_status(reply.status)
    return True


def run_command(host: SimHost, channel: paramiko.Channel, command: str) -> None:
    """Answer one exec, bent by the host's current fault."""
    try:
        _answer(host, channel, command)
    except (OSError, EOFError, paramiko.SSHException):
        pass  # the client went away mid-answer; nothing to tell it
    finally:
        channel.close()


def run_shell(host: SimHost, channel: paramiko.Channel, _command: str) -> None:
    """A long-lived ``/bin/sh`` on ``channel``: read requests from its stdin until it closes."""
    host.shells += 1
    shell = ShellInput()
    deadline = time.monotonic() + HANG_LIMIT * 10  # bounded, like everything here
    try:
        while time.monotonic() < deadline:
            data = channel.recv(65536)
            if not data:
                return  # stdin closed: the shell exits
            for step, text in shell.feed(data.decode("utf-8", "replace")):
                if step == "ready":
                    channel.sendall(text.encode())
                elif not _answer(host, channel, text, shell.frame):
                    return
    except ValueError:
        return  # input the simulated shell cannot read: it exits, as sh does on a syntax error
    except (OSError, EOFError, paramiko.SSHException):
        pass
    finally:
        channel.close()


def _hold(host: SimHost, sock: socket.socket) -> None:
    """Accept-then-hang: read and ignore whatever the client sends until the fault is cleared."""
    sock.settimeout(POLL)
    deadline = time.monotonic() + HANG_LIMIT
    while host.fault.mode is Mode.HANG and time.monotonic() < deadline:
        try:
            if not sock.recv(4096):
                return
        except TimeoutError:
            continue
        except OSError:
            return


def serve_connection(host: SimHost, sock: socket.socket, user: str, authorized: paramiko.PKey) -> None:
    """Run one SSH connection to its end (the client closes, the lab drops it, or it fails)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host.connections += 1
    if host.fault.mode is Mode.HANG:
        _hold(host, sock)
        sock.close()
        return
    transport = paramiko.Transport(sock)
    transport.add_server_key(host.key)
    host.transports.add(transport)
    try:
        transport.start_server(server=SessionServer(host, user, authorized))
        channels: list[paramiko.Channel] = []
        while transport.is_active():
            # paramiko queues every opened channel for accept(): drain the queue, and hold each
            # channel until it closes, because a Channel that is garbage-collected closes itself.
            channel = transport.accept(timeout=1)
            channels = [c for c in channels if not c.closed]
            if channel is not None:
                channels.append(channel)
    except (OSError, EOFError, paramiko.SSHException):
        pass  # handshake failed or the peer vanished; the client reports it
    finally:
        transport.close()
        host.transports.discard(transport)


def listen(host: SimHost, port: int, user: str, authorized: paramiko.PKey) -> StreamServer:
    """Start accepting on (host ip, port)."""
    server = StreamServer(
        (host.profile.ip, port), lambda sock, _addr: serve_connection(host, sock, user, authorized), backlog=1024
    )
    server.start()
    return server
