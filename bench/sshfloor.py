"""The floor: what paramiko + gevent alone cost to run the batched command on many hosts.

No pool bookkeeping, no parsing, no metrics, no HTTP: dial with a TCP_NODELAY socket, authenticate,
open a channel, exec ``BATCH_SCRIPT``, read to EOF. The exporter's fan-out is judged against this
floor measured in the same run. With ``shell=True`` the floor is the exporter's own transport
instead: one long-lived ``/bin/sh`` per host (``exporter/shellsession.py``, the same framing), one
request and one answer per round; what the exporter pays beyond it is its own work (split,
collectors, render, pool, HTTP). Import only after ``gevent.monkey.patch_all()``.
"""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

import gevent
import gevent.lock
import gevent.pool
import paramiko

from optilab.exporter.shellsession import ShellSession


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def dial(host: str, port: int, user: str, key: paramiko.PKey, known: paramiko.HostKeys) -> paramiko.Transport:
    """Connect, verify the host key against known_hosts, authenticate with the key."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    transport = paramiko.Transport(sock)
    transport.start_client(timeout=10)
    name = host if port == 22 else f"[{host}]:{port}"
    server_key = transport.get_remote_server_key()
    if known.lookup(name) is None or known.lookup(name).get(server_key.get_name()) != server_key:
        transport.close()
        raise paramiko.BadHostKeyException(host, server_key, server_key)
    transport.auth_publickey(user, key)
    return transport


def execute(transport: paramiko.Transport, command: str) -> bytes:
    channel = transport.open_session()
    try:
        channel.exec_command(command)
        chunks = []
        while data := channel.recv(65536):
            chunks.append(data)
        return b"".join(chunks)
    finally:
        channel.close()


class Floor:
    """Connections to every target, dialled ``dials`` at a time (the exporter's default is 16)."""

    def __init__(
        self,
        targets: list[tuple[str, int]],
        user: str,
        key_file: Path,
        known_hosts: Path,
        dials: int = 16,
        shell: bool = False,
    ) -> None:
        self.targets, self.user, self.shell = targets, user, shell
        self.shells: dict[tuple[str, int], ShellSession] = {}
        self.key = paramiko.Ed25519Key.from_private_key_file(str(key_file))
        self.known = paramiko.HostKeys(str(known_hosts))
        self.dials = gevent.lock.BoundedSemaphore(dials)
        self.transports: dict[tuple[str, int], paramiko.Transport] = {}

    def _connect_and_run(self, target: tuple[str, int], command: str) -> int:
        if target not in self.transports:
            with self.dials:
                self.transports[target] = dial(*target, self.user, self.key, self.known)
        if not self.shell:
            return len(execute(self.transports[target], command))
        if target not in self.shells:
            self.shells[target] = ShellSession.start(self.transports[target], max_bytes=16 << 20)
        return len(self.shells[target].ask(command))

    def round(self, command: str) -> tuple[float, float, int]:
        """(wall s, CPU s, bytes) of running ``command`` on every target at once (dialling if needed)."""
        cpu0, wall0 = cpu(), time.perf_counter()
        group = gevent.pool.Group()
        sizes = group.map(lambda t: self._connect_and_run(t, command), self.targets)
        return time.perf_counter() - wall0, cpu() - cpu0, sum(sizes)

    def close(self) -> None:
        for session in self.shells.values():
            session.close()
        self.shells.clear()
        for transport in self.transports.values():
            transport.close()
        self.transports.clear()
