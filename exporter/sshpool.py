"""A pool of SSH connections (paramiko under gevent): one per host, reused across scrapes.

A cold connect costs a TCP handshake, a key exchange and an authentication (~60 ms of mostly CPU);
an exec on an open connection costs ~2 ms. So every host keeps one authenticated transport that
scrapes share, with guards for what goes wrong in a long-running pool:

* global caps on open connections and on concurrent dials (sshd's ``MaxStartups`` drops
  connections when too many are unauthenticated; handshakes are CPU-heavy);
* a per-host dial lock (concurrent scrapes of one host share one dial) and a per-connection channel
  limit (sshd's ``MaxSessions``);
* ``TCP_NODELAY`` on a socket the pool creates itself (paramiko leaves Nagle on, which costs ~40 ms
  per exec in delayed ACKs);
* every call runs under one deadline (``gevent.Timeout``): paramiko's keepalive only sends, so a
  vanished peer would otherwise block a read forever;
* a broken connection found on reuse is redialled once, transparently; a connection is recycled
  after ``max_age`` seconds or ``max_execs`` execs (paramiko's ``channels_seen`` grows without
  bound), and an idle one is closed by a reaper greenlet;
* host keys verified against known_hosts (:class:`HostKeyStore`);
* each answer is read through a long-lived shell (``ssh.session.mode`` shell/auto,
  :mod:`exporter.shellsession`) or one exec channel per call (exec), capped at
  ``max_answer_bytes``; a fresh login is tried in the background every ``login_check_interval``
  (:meth:`SshPool.enable_login_checks`), see :mod:`exporter.logincheck`.
* hosts behind a bastion are dialled over a channel of one pooled bastion connection
  (``route`` says which host uses which jump; :mod:`exporter.jump`).

Import this module only after ``gevent.monkey.patch_all()`` (see ``exporter/__main__.py``):
paramiko's transports are threads and must become greenlets.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
import gevent.lock
import paramiko

from optilab.exporter.config import HealthSettings, Inventory, JumpSettings, PoolSettings, SshSettings
from optilab.exporter.health import JumpHealth
from optilab.exporter.hostkeys import HostKeyStore
from optilab.exporter.jump import ForwardedSocket, JumpHosts, bastion_lost
from optilab.exporter.logincheck import LoginChecks, LoginResult
from optilab.exporter.overload import LoopMonitor, QueueSlots, call_started, timeout_reason
from optilab.exporter.shellsession import AnswerTooLargeError, ShellDiedError, ShellSession, ShellUnavailableError
from optilab.exporter.ssherror import SshError
from optilab.exporter.targets import Target

log = logging.getLogger("optilab.exporter.sshpool")

IDLE_POLL_SECONDS = 1.0


@dataclass
class PoolStats:
    """Counters read by the ``/metrics`` collector."""

    dials: Counter[str] = field(default_factory=Counter)  # by result: "success" or an error reason
    errors: Counter[str] = field(default_factory=Counter)  # every SshError, dial or exec, by reason
    closed: Counter[str] = field(default_factory=Counter)  # by cause: idle, age, execs, broken, ...
    execs: int = 0
    shells: Counter[str] = field(default_factory=Counter)  # started, refused, died, reset, busy
    answer_cap_hits: int = 0


class Connection:
    """One authenticated transport to one host, shared by concurrent scrapes of that host."""

    def __init__(self, target: Target, transport: paramiko.Transport, channels: int, now: float) -> None:
        self.target, self.transport = target, transport
        self.created = self.last_used = now
        self.execs = self.users = 0
        self.retired = self.closed = False
        self.channels = QueueSlots(channels)  # a wait here is the exporter's queueing
        self.shell: ShellSession | None = None
        self.shell_busy = False
        self.shell_refused: str | None = None  # why this connection cannot keep a shell (then: exec)

    def run(self, command: str, max_bytes: int) -> str:
        """Exec ``command`` on a new channel and read stdout to EOF (the caller holds the deadline)."""
        with self.channels:
            channel = self.transport.open_session()
            try:
                channel.exec_command(command)
                chunks, size = [], 0
                while data := channel.recv(65536):
                    size += len(data)
                    if size > max_bytes:
                        raise AnswerTooLargeError(max_bytes)
                    chunks.append(data)
            finally:
                channel.close()
        self.execs += 1
        return b"".join(chunks).decode("utf-8", "replace")

    def ask(self, command: str, max_bytes: int, events: Counter[str]) -> str:
        """Answer ``command`` through this connection's shell, starting one if there is none.

        Raises :class:`ShellUnavailableError` when no shell can be started, :class:`ShellDiedError` when it
        ended mid-answer; on any failure the shell is closed, to be replaced on the next call.
        """
        self.shell_busy = True
        try:
            if self.shell is None:
                self.channels.acquire()  # the shell holds one of the connection's channels for its life
                try:
                    self.shell = ShellSession.start(self.transport, max_bytes)
                except BaseException:
                    self.channels.release()
                    raise
                events["started"] += 1
            try:
                output = self.shell.ask(command)
            except ShellDiedError as exc:
                first = self.shell.answers == 0
                self.drop_shell()
                if first and self.transport.is_active():  # it never answered: it cannot be kept here
                    raise ShellUnavailableError(f"the shell ended before its first answer ({exc})") from exc
                raise
            except BaseException:
                self.drop_shell()
                raise
            self.execs += 1  # answers, either way: ``max_execs`` recycles by answers
            return output
        finally:
            self.shell_busy = False

    def drop_shell(self) -> None:
        if self.shell is not None:
            self.shell.close()
            self.shell = None
            self.channels.release()


class SshPool:
    def __init__(
        self,
        ssh: SshSettings,
        settings: PoolSettings,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        route: Callable[[Target], JumpSettings | None] | None = None,
        health: HealthSettings | None = None,
    ) -> None:
        self.ssh, self.settings, self._clock = ssh, settings, clock
        self.route = route or (lambda target: ssh.jump)  # which bastion, if any, a target is dialled through
        self.jumps = JumpHosts(ssh, JumpHealth(health or HealthSettings(), clock), settings.keepalive)
        self.hostkeys = HostKeyStore(ssh.known_hosts, ssh.host_key_policy)
        self.stats = PoolStats()
        self._connections: dict[Target, Connection] = {}
        self._dial_locks: dict[Target, gevent.lock.Semaphore] = {}
        self._dial_slots = QueueSlots(settings.max_concurrent_dials)
        self._open_slots = QueueSlots(settings.max_connections)
        self.monitor: LoopMonitor | None = None  # loop stalls, to tell overload from host timeouts
        self._pkey: paramiko.PKey | None = None
        self._reaper: gevent.Greenlet | None = None
        self.modes: dict[Target, str] = {}  # "shell" or "exec": how each host is answered now
        self.host_modes: dict[Target, str] = {}  # per-department ssh.session.mode overrides
        self.login = LoginChecks(self, ssh.session.login_check_interval, clock, wall_clock)
        self._cap_logged: set[Target] = set()

    @classmethod
    def serving(
        cls,
        ssh: SshSettings,
        settings: PoolSettings,
        route: Callable[[Target], JumpSettings | None],
        health: HealthSettings,
        monitor: LoopMonitor | None,
    ) -> SshPool:
        """The exporter's pool: reaper running, fresh-login checks on, loop stalls told from host timeouts."""
        pool = cls(ssh, settings, route=route, health=health)
        pool.monitor = monitor
        pool.start_reaper()
        pool.enable_login_checks()
        return pool

    def successor(self, ssh: SshSettings, settings: PoolSettings, health: HealthSettings) -> SshPool:
        """The pool that replaces this one after a reload changed SSH or pool settings: same route and
        monitor, started. The caller points its runner at it, then closes this one."""
        return SshPool.serving(ssh, settings, self.route, health, self.monitor)

    # -- public ---------------------------------------------------------------------------------

    def run(self, target: Target, command: str, deadline: float) -> str:
        """Run ``command`` on ``target`` and return its stdout; raise SshError (with a reason).

        ``deadline`` is a ``clock()`` time; nothing in here outlives it. The exec itself is also
        bounded by ``ssh.command_timeout``, the dial by ``ssh.connect_timeout``. A timeout caused by
        the exporter's own queueing or a stalled loop is reason ``overload``, not ``timeout``
        (``exporter/overload.py``): it says nothing about the host.
        """
        timer = gevent.Timeout(max(0.0, deadline - self._clock()))
        timer.start()
        call = call_started()
        connection: Connection | None = None
        self.login.maybe_start(target)
        try:
            connection, fresh = self._checkout(target)
            try:
                output = self._exec(connection, command, deadline)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if isinstance(exc, ShellDiedError) and connection.transport.is_active():
                    log.info("%s: shell session ended (%s); starting a new one", target, exc)
                    self.stats.shells["died"] += 1
                    output = self._exec(connection, command, deadline)
                elif fresh:
                    raise SshError("protocol", f"exec failed: {exc!r}") from exc
                else:
                    log.info("%s: pooled connection broke (%r); redialling", target, exc)
                    self._release(connection, broken=True)
                    connection = None
                    connection, fresh = self._checkout(target)
                    output = self._exec(connection, command, deadline)
            self.stats.execs += 1
            if fresh:
                self.login.record_pooled_login(target)  # a new connection that answered: a fresh login worked
            return output
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            if connection is not None:
                connection.retired = True  # its channel may hang; never reuse it
            raise self._count(SshError(timeout_reason(call, self.monitor), "deadline reached")) from None
        except AnswerTooLargeError as exc:
            self.stats.answer_cap_hits += 1
            if target not in self._cap_logged:
                self._cap_logged.add(target)
                log.warning(
                    "%s: answer exceeded ssh.session.max_answer_bytes (%d); session reset (logged once per host)",
                    target,
                    exc.limit,
                )
            raise self._count(exc) from None
        except SshError as exc:
            if exc.reason == "timeout":
                if connection is not None:
                    connection.retired = True
                exc = SshError(timeout_reason(call, self.monitor), str(exc))
            raise self._count(exc) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._count(SshError("protocol", repr(exc))) from None
        except Exception as exc:
            # A deadline that fires inside paramiko's BufferedPipe/Condition locks can leave them
            # released twice ("RuntimeError: Semaphore released too many times"). It is this call's
            # failure: the connection's locks are suspect, so it is never reused.
            if connection is not None:
                connection.retired = True
            late = self._clock() >= deadline or not timer.pending
            log.info("%s: SSH call failed inside paramiko: %r", target, exc)
            reason = timeout_reason(call, self.monitor) if late else "protocol"
            raise self._count(SshError(reason, f"{type(exc).__name__} in paramiko")) from None
        finally:
            timer.close()
            if connection is not None:
                self._release(connection)

    def _exec(self, connection: Connection, command: str, deadline: float) -> str:
        if self.ssh.command_timeout >= deadline - self._clock():
            # the probe's deadline comes first: arm no second timer (two nested gevent timeouts
            # firing in turn inside paramiko's lock handling corrupt its locks)
            return self._answer(connection, command)
        with gevent.Timeout(self.ssh.command_timeout, SshError("timeout", "command_timeout")):
            return self._answer(connection, command)

    def _answer(self, connection: Connection, command: str) -> str:
        """One answer by the host's mode: its shell, or an exec where there is no shell to keep."""
        mode = self.host_modes.get(connection.target, self.ssh.session.mode)
        cap = self.ssh.session.max_answer_bytes
        if mode == "exec" or connection.shell_refused:
            connection.drop_shell()  # the mode may have changed on a reload
            self.modes[connection.target] = "exec"
            return connection.run(command, cap)
        self.modes[connection.target] = "shell"
        if connection.shell_busy:  # a concurrent scrape of this host: one exec, never interleaved
            self.stats.shells["busy"] += 1
            return connection.run(command, cap)
        try:
            return connection.ask(command, cap, self.stats.shells)
        except ShellUnavailableError as exc:
            self.stats.shells["refused"] += 1
            if mode == "shell":
                raise
            connection.shell_refused = exc.detail
            self.modes[connection.target] = "exec"
            log.warning("%s: cannot keep a shell (%s); this connection answers by exec", connection.target, exc.detail)
            return connection.run(command, cap)
        except AnswerTooLargeError:
            self.stats.shells["reset"] += 1
            raise

    def set_inventory(self, inventory: Inventory) -> None:
        """Take the inventory's per-department session modes; forget hosts that left it."""
        self.host_modes = {
            entry.target: inventory.session_modes[entry.department]
            for entry in inventory.hosts.values()
            if entry.department in inventory.session_modes
        }
        allowed = {entry.target for entry in inventory.hosts.values()}
        for store in (self.modes, self.login.results):
            for target in [t for t in store if t not in allowed]:
                del store[target]

    def host_mode(self, target: Target) -> str | None:
        """How ``target`` was last answered ("shell" or "exec"), None before its first answer."""
        return self.modes.get(target)

    def login_result(self, target: Target) -> LoginResult | None:
        """The last fresh-login check of ``target`` (None before the first)."""
        return self.login.results.get(target)

    def enable_login_checks(self) -> None:
        """Run the fresh-login check for hosts this pool serves (the exporter does; one-off users don't)."""
        self.login.enabled = True

    def open_connections(self) -> int:
        """Pooled connections whose transport is still up. One the peer dropped stays in the pool until
        its next use or the reaper closes it, but it is not open and must not count as such."""
        return sum(1 for connection in self._connections.values() if connection.transport.is_active())

    def start_reaper(self) -> None:
        """Close idle and over-age connections in the background (a greenlet; stops on close())."""
        if self._reaper is None:
            self._reaper = gevent.spawn(self._reap_forever)

    def close(self) -> None:
        if self._reaper is not None:
            self._reaper.kill(block=False)
            self._reaper = None
        self.login.stop()
        for connection in list(self._connections.values()):
            self._close(connection, "shutdown")
        self.jumps.close()

    def reap(self) -> None:
        """One reaper pass: close idle, over-age and dead connections nobody is using."""
        now = self._clock()
        for connection in list(self._connections.values()):
            if connection.users:
                continue
            if now - connection.last_used > self.settings.idle_timeout:
                self._close(connection, "idle")
            elif worn := self._worn_out(connection, now):
                self._close(connection, worn)
            elif not connection.transport.is_active():
                self._close(connection, "broken")

    # -- checkout and release -------------------------------------------------------------------

    def _checkout(self, target: Target) -> tuple[Connection, bool]:
        """A usable connection to ``target`` (reused when possible) and whether it was just dialled."""
        connection = self._usable(target)
        fresh = False
        if connection is None:
            lock = self._dial_locks.setdefault(target, gevent.lock.Semaphore())
            with lock:  # concurrent scrapes of one host wait for one dial instead of dialling twice
                connection = self._usable(target)
                if connection is None:
                    connection, fresh = self._dial(target), True
                    self._connections[target] = connection
        connection.users += 1
        connection.last_used = self._clock()
        return connection, fresh

    def _usable(self, target: Target) -> Connection | None:
        connection = self._connections.get(target)
        if connection is None:
            return None
        cause = self._worn_out(connection, self._clock())
        if not connection.transport.is_active():
            cause = "broken"
        elif connection.retired:
            cause = "retired"
        if cause is None:
            return connection
        del self._connections[target]  # new scrapes dial afresh; current users finish first
        connection.retired = True
        if not connection.users:
            self._close(connection, cause)
        return None

    def _worn_out(self, connection: Connection, now: float) -> str | None:
        if now - connection.created > self.settings.max_age:
            return "age"
        if connection.execs >= self.settings.max_execs:
            return "execs"
        return None

    def _release(self, connection: Connection, broken: bool = False) -> None:
        connection.users = max(0, connection.users - 1)
        if broken:
            connection.retired = True
            if self._connections.get(connection.target) is connection:
                del self._connections[connection.target]
        if connection.retired and not connection.users:
            self._close(connection, "broken" if broken else "retired")

    def _close(self, connection: Connection, cause: str) -> None:
        if self._connections.get(connection.target) is connection:
            del self._connections[connection.target]
        if connection.closed:
            return
        connection.closed = True
        self.stats.closed[cause] += 1
        connection.transport.close()
        self._open_slots.release()

    # -- dialling -------------------------------------------------------------------------------

    def _dial(self, target: Target) -> Connection:
        """Connect, verify the host key, authenticate; counted in ``stats.dials`` by result."""
        if self._open_slots.locked():
            self._evict_idle()
        self._open_slots.acquire()  # blocks (under the caller's deadline) while the pool is full
        transport: paramiko.Transport | None = None
        sock: socket.socket | ForwardedSocket | None = None
        try:
            with self._dial_slots, gevent.Timeout(self.ssh.connect_timeout, SshError("timeout", "connect")):
                sock = self._connect_socket(target)
                transport = paramiko.Transport(sock)  # type: ignore[arg-type]  # a ForwardedSocket is socket-like
                _prefer_aead(transport)
                self.hostkeys.prefer_known_types(target, transport)
                transport.start_client()
                self.hostkeys.verify(target, transport.get_remote_server_key())
                self._authenticate(transport)
            transport.set_keepalive(max(1, int(self.settings.keepalive)))
            # paramiko's transport greenlet wakes every socket timeout (0.1 s) to look for a close:
            # 0.4 ms CPU per idle connection per second, 10 % of a core for 254 hosts. Closing
            # wakes it anyway, and keepalives need only second granularity.
            sock.settimeout(IDLE_POLL_SECONDS)
        except BaseException as exc:
            self._open_slots.release()
            if transport is not None:
                transport.close()
            elif sock is not None:
                sock.close()
            lost = bastion_lost(sock, exc)  # through a bastion that just went away: the bastion's failure
            if lost is not None:
                self.stats.dials[lost.reason] += 1
                raise lost from exc
            self.stats.dials[_reason(exc)] += 1
            if isinstance(exc, gevent.Timeout | SshError):
                raise
            if isinstance(exc, Exception):
                raise SshError(_reason(exc), repr(exc)) from exc
            raise
        self.stats.dials["success"] += 1
        return Connection(target, transport, self.settings.channels_per_host, self._clock())

    def _connect_socket(self, target: Target) -> socket.socket | ForwardedSocket:
        jump = self.route(target)
        if jump is not None:  # a direct-tcpip channel through the bastion stands in for the TCP socket
            return self.jumps.open_channel(jump, target, self.ssh.connect_timeout)
        sock = socket.create_connection((target.host, target.port), timeout=self.ssh.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        return sock

    def _authenticate(self, transport: paramiko.Transport) -> None:
        if self.ssh.key_file is not None:
            transport.auth_publickey(self.ssh.user, self._private_key())
        elif self.ssh.password is not None:
            transport.auth_password(self.ssh.user, self.ssh.password.reveal())
        if not transport.is_authenticated():
            raise SshError("auth", "not authenticated")

    def _private_key(self) -> paramiko.PKey:
        if self._pkey is None:
            passphrase = self.ssh.passphrase.reveal().encode() if self.ssh.passphrase else None
            try:
                self._pkey = paramiko.PKey.from_path(self.ssh.key_file, passphrase)  # type: ignore[arg-type]
            except (OSError, ValueError, TypeError, paramiko.SSHException) as exc:
                raise SshError("auth", f"cannot load key_file {self.ssh.key_file}: {type(exc).__name__}") from None
        return self._pkey

    def _evict_idle(self) -> None:
        """Make room at the connection cap by closing the least recently used idle connection."""
        idle = [c for c in self._connections.values() if not c.users]
        if idle:
            self._close(min(idle, key=lambda c: c.last_used), "evicted")

    def _reap_forever(self) -> None:
        period = max(1.0, min(30.0, self.settings.idle_timeout / 2))
        while True:
            gevent.sleep(period)
            try:
                self.reap()
            except Exception:
                log.exception("connection reaper pass failed")

    def _count(self, error: SshError) -> SshError:
        self.stats.errors[error.reason] += 1
        return error


def _prefer_aead(transport: paramiko.Transport) -> None:
    """Offer AES-GCM first: an AEAD cipher spares paramiko its per-packet HMAC check in Python,
    about a quarter of the client CPU of a batched exec (measured: 4.1 → 3.2 ms). Servers without
    it negotiate the next cipher as before."""
    options = transport.get_security_options()
    aead = tuple(c for c in ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com") if c in options.ciphers)
    options.ciphers = aead + tuple(c for c in options.ciphers if c not in aead)


def _reason(exc: BaseException) -> str:
    """Map what a dial raised to a probe error reason (docs/interfaces.md)."""
    if isinstance(exc, SshError):
        return exc.reason
    if isinstance(exc, gevent.Timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, paramiko.BadHostKeyException):
        return "hostkey"
    if isinstance(exc, paramiko.AuthenticationException):
        return "auth"
    if isinstance(exc, paramiko.SSHException | EOFError | ConnectionResetError):
        return "protocol"
    if isinstance(exc, OSError):
        return "unreachable"
    return "protocol"
