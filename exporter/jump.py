"""Lab machines behind an SSH bastion (jump host): one pooled connection per bastion, a channel per host.

The design's security section puts the lab behind a bastion. The pool then dials a lab machine not
over TCP but over a ``direct-tcpip`` channel of one authenticated transport to the bastion (what
``ssh -J`` does, without a subprocess): :meth:`JumpHosts.open_channel` returns that channel and the
pool uses it as the ``sock`` of the lab machine's own transport. So both hops are SSH sessions of
their own: the bastion's host key is verified against the jump's known_hosts, the lab machine's
against the pool's, end to end through the bastion (which sees only ciphertext).

What can fail, and whose fault it is (reasons of docs/interfaces.md):

* the bastion cannot be reached, hangs, offers an unknown or changed key, refuses the login, or
  refuses to forward (``AllowTcpForwarding no``, ``PermitOpen``): ``jump_unreachable``,
  ``jump_timeout``, ``jump_hostkey``, ``jump_auth``, ``jump_refused``, ``jump_protocol``. These
  count against the bastion's own health (:class:`exporter.health.JumpHealth`), never against the
  hosts behind it; for the jump's ``retry_interval`` after such a failure every dial through it
  fails fast with the same reason instead of each host waiting out its own connect timeout;
* the bastion is fine but cannot connect to the lab machine (``connect failed``): ``refused`` or
  ``unreachable`` as the bastion's message says, the host's own failure, as if it had been dialled
  directly.

Deadlines: the bastion dial runs under ``ssh.connect_timeout`` and under the caller's deadline. A
channel open waits at most 60 % of ``connect_timeout``; when it times out, a keepalive request
tells a silent lab machine (the bastion answers: ``timeout``, the host's) from a bastion that froze
(no answer: ``jump_timeout``, and its connection is dropped). A
bastion handshake happens in the dial slot of the lab dial that needed it, so the pool's
``max_concurrent_dials`` caps bastion handshakes too (one per bastion at a time: concurrent dials
wait on a per-bastion lock instead of opening a second connection).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.lock
import paramiko
from paramiko.common import OPEN_FAILED_CONNECT_FAILED
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from optilab.exporter.config import JumpSettings, SshSettings
from optilab.exporter.health import JumpHealth
from optilab.exporter.hostkeys import HostKeyStore
from optilab.exporter.ssherror import SshError
from optilab.exporter.targets import Target
from optilab.toolkit.contract import HEALTH_STATES

log = logging.getLogger("optilab.exporter.jump")

IDLE_POLL_SECONDS = 1.0
#: share of the connect timeout a channel open may wait; in the rest the bastion is asked whether it
#: still answers, so a frozen bastion is told from a silent lab machine within the timeout
OPEN_SHARE = 0.6


@dataclass
class _Bastion:
    settings: JumpSettings
    hostkeys: HostKeyStore
    lock: gevent.lock.Semaphore = field(default_factory=gevent.lock.Semaphore)
    transport: paramiko.Transport | None = None
    pkey: paramiko.PKey | None = None
    channels: int = 0  # direct-tcpip channels opened so far
    check: gevent.lock.Semaphore = field(default_factory=gevent.lock.Semaphore)  # one keepalive at a time
    answered_at: float = float("-inf")  # when the bastion last answered a keepalive (time.monotonic)


class JumpHosts:
    """The pool's bastion connections, keyed by :class:`JumpSettings` (one transport each)."""

    def __init__(
        self,
        ssh: SshSettings,
        health: JumpHealth,
        keepalive: float = 30.0,
        connect: Callable[[Target, float], socket.socket] | None = None,
    ) -> None:
        self.ssh, self.health, self.keepalive = ssh, health, keepalive
        self._connect = connect or _tcp_connect
        self._bastions: dict[JumpSettings, _Bastion] = {}

    def open_channel(self, jump: JumpSettings, target: Target, timeout: float) -> ForwardedSocket:
        """A ``direct-tcpip`` channel through ``jump`` to ``target``; raises SshError with a reason."""
        bastion = self._bastions.get(jump)
        if bastion is None:
            bastion = self._bastions[jump] = _Bastion(jump, HostKeyStore(jump.known_hosts, self.ssh.host_key_policy))
        for attempt in (1, 2):  # a pooled bastion transport found broken is redialled once
            transport = self._transport(bastion)
            try:
                origin = transport.sock.getsockname()[:2]  # type: ignore[union-attr]  # dialled directly: a socket
                channel = transport.open_channel(
                    "direct-tcpip", (target.host, target.port), origin, timeout=timeout * OPEN_SHARE
                )
            except (paramiko.SSHException, EOFError, OSError) as exc:
                failure = transport.last_open_failure() if isinstance(transport, _BastionTransport) else None
                if failure is not None:
                    raise self._channel_refused(bastion, target, *failure) from None
                if isinstance(exc, paramiko.ChannelException):
                    raise self._channel_refused(bastion, target, exc.code, str(exc.text or "")) from None
                if "Timeout opening channel" in str(exc):  # a silent lab machine, or a frozen bastion?
                    if self._still_answers(bastion, transport, timeout * (1 - OPEN_SHARE) / 2):
                        raise SshError("timeout", f"{jump} did not open a channel to {target} in time") from None
                    transport.close()
                    bastion.transport = None
                    raise self._failed(bastion, "jump_timeout", "connected but no longer answering") from None
                # anything else: the bastion connection broke (its transport may not know it yet)
                log.info(
                    "bastion %s: pooled connection broke (%r)%s", jump, exc, "; redialling" if attempt == 1 else ""
                )
                transport.close()
                bastion.transport = None
                continue
            bastion.channels += 1
            return ForwardedSocket(channel)
        raise self._failed(bastion, "jump_protocol", "bastion connection broke twice in a row")

    def close(self) -> None:
        for bastion in self._bastions.values():
            if bastion.transport is not None:
                bastion.transport.close()
                bastion.transport = None

    def families(self) -> list[Metric]:
        """Self-metrics: each bastion's health state, whether its connection is up, channels opened."""
        state = GaugeMetricFamily(
            "optilab_exporter_jump_health_state",
            "Health state of each bastion (1 for the current state).",
            labels=["jump", "state"],
        )
        up = GaugeMetricFamily(
            "optilab_exporter_jump_connected", "1 when the pooled bastion connection is up.", labels=["jump"]
        )
        channels = CounterMetricFamily(
            "optilab_exporter_jump_channels", "direct-tcpip channels opened through each bastion.", labels=["jump"]
        )
        by_name: dict[str, list[_Bastion]] = {}  # one bastion HOST:PORT may serve several logins
        for jump, bastion in self._bastions.items():
            by_name.setdefault(str(jump), []).append(bastion)
        for name, bastions in sorted(by_name.items()):
            current = self.health.get(name).state
            for each in HEALTH_STATES:
                state.add_metric([name, each], 1 if each == current else 0)
            up.add_metric([name], int(any(b.transport is not None and b.transport.is_active() for b in bastions)))
            channels.add_metric([name], sum(b.channels for b in bastions))
        return [state, up, channels]

    # -- the bastion's own connection -----------------------------------------------------------

    def _transport(self, bastion: _Bastion) -> paramiko.Transport:
        with bastion.lock:  # concurrent dials through one bastion share one connection
            if bastion.transport is not None and bastion.transport.is_active():
                return bastion.transport
            name = str(bastion.settings)
            if not self.health.may_dial(name):
                last = self.health.get(name)
                raise SshError(last.reason or "jump_unreachable", f"bastion {name} failed recently; not redialled yet")
            bastion.transport = self._dial(bastion)
            self.health.record_success(name)
            return bastion.transport

    def _dial(self, bastion: _Bastion) -> paramiko.Transport:
        jump = bastion.settings
        own_timer = gevent.Timeout(self.ssh.connect_timeout)
        own_timer.start()
        sock: socket.socket | None = None
        transport: paramiko.Transport | None = None
        try:
            sock = self._connect(jump.target, self.ssh.connect_timeout)
            transport = _BastionTransport(sock)
            bastion.hostkeys.prefer_known_types(jump.target, transport)
            transport.start_client()
            bastion.hostkeys.verify(jump.target, transport.get_remote_server_key())
            transport.auth_publickey(jump.user, self._private_key(bastion))
            if not transport.is_authenticated():
                raise SshError("auth", "not authenticated")
            transport.set_keepalive(max(1, int(self.keepalive)))
            sock.settimeout(IDLE_POLL_SECONDS)  # see sshpool.IDLE_POLL_SECONDS
        except BaseException as exc:
            if transport is not None:
                transport.close()
            elif sock is not None:
                sock.close()
            if isinstance(exc, gevent.Timeout) and exc is not own_timer:
                # the caller's deadline, not the bastion's fault: no backoff, but still its reason
                raise SshError("jump_timeout", f"deadline reached while dialling bastion {jump}") from None
            if not isinstance(exc, Exception | gevent.Timeout):
                raise
            raise self._failed(
                bastion, _jump_reason(exc), repr(exc) if not isinstance(exc, SshError) else str(exc)
            ) from None
        finally:
            own_timer.close()
        log.info("bastion %s: connected as %s", jump, jump.user)
        return transport

    def _still_answers(self, bastion: _Bastion, transport: paramiko.Transport, seconds: float) -> bool:
        """Whether the bastion answered a keepalive since we asked. One request at a time (paramiko's
        ``global_request`` keeps one pending reply per transport); those waiting share its answer."""
        asked = time.monotonic()
        if bastion.check.acquire(timeout=seconds):
            try:
                if bastion.answered_at >= asked:
                    return True
                if _answers(transport, seconds):
                    bastion.answered_at = time.monotonic()
                    return True
                return False
            finally:
                bastion.check.release()
        return bastion.answered_at >= asked

    def _private_key(self, bastion: _Bastion) -> paramiko.PKey:
        if bastion.pkey is None:
            jump = bastion.settings
            passphrase = jump.passphrase.reveal().encode() if jump.passphrase else None
            try:
                bastion.pkey = paramiko.PKey.from_path(jump.key_file, passphrase)  # type: ignore[arg-type]
            except (OSError, ValueError, TypeError, paramiko.SSHException) as exc:
                raise SshError("auth", f"cannot load key_file {jump.key_file}: {type(exc).__name__}") from None
        return bastion.pkey

    def _failed(self, bastion: _Bastion, reason: str, detail: str) -> SshError:
        jump = bastion.settings
        self.health.record_failure(str(jump), reason, jump.retry_interval)
        log.warning("bastion %s: %s (%s)", jump, reason, detail)
        return SshError(reason, f"bastion {jump}: {detail}")

    def _channel_refused(self, bastion: _Bastion, target: Target, code: int, text: str) -> SshError:
        """``connect failed`` is the lab machine's failure; any other refusal is the bastion's."""
        if code == OPEN_FAILED_CONNECT_FAILED:
            reason = "refused" if "refused" in text.lower() else "unreachable"
            return SshError(reason, f"bastion {bastion.settings} cannot connect to {target}: {text}")
        return self._failed(bastion, "jump_refused", f"refused to forward to {target}: {text} (code {code})")


class _BastionTransport(paramiko.Transport):
    """A transport that keeps why each channel open failed, per channel. paramiko keeps only the
    last failure, transport-wide, and hands it to whichever waiter asks first: with concurrent opens
    (a fan-out, a scan) the others get a bare "Unable to open channel." and "the bastion refuses to
    forward" could not be told from "the lab machine is down". It also keeps the server's text
    ("Connection refused"), which paramiko replaces by the code's name. Relies on paramiko's
    ``_next_channel`` (called by ``open_channel`` in the opening greenlet) and its
    ``MSG_CHANNEL_OPEN_FAILURE`` handler; tests/exporter/test_jump.py fails if either changes."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._opening = threading.local()  # a greenlet-local once gevent has patched threading
        self._open_failures: dict[int, tuple[int, str]] = {}

    def last_open_failure(self) -> tuple[int, str] | None:
        """(reason code, server's text) of this greenlet's last failed ``open_channel``, else None."""
        return self._open_failures.pop(getattr(self._opening, "chanid", -1), None)

    def _next_channel(self) -> int:
        chanid: int = super()._next_channel()  # type: ignore[misc]
        self._open_failures.pop(chanid, None)  # a late answer to an earlier open that timed out
        self._opening.chanid = chanid
        return chanid

    def _parse_channel_open_failure(self, m: paramiko.Message) -> None:
        chanid, code, text = m.get_int(), m.get_int(), m.get_text()
        self._open_failures[chanid] = (code, text)
        m.rewind()
        super()._parse_channel_open_failure(m)  # type: ignore[misc]


class ForwardedSocket:
    """A ``direct-tcpip`` channel as the ``sock`` of a lab machine's transport. It is the channel (every
    attribute delegates) except that closing never raises: paramiko's ``Channel.close`` sends on the
    bastion's transport, which raises when the bastion has just gone away — and a pool closing a
    broken connection must not fail on that."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)

    def close(self) -> None:
        try:
            self.channel.close()
        except (paramiko.SSHException, EOFError, OSError):
            pass  # the bastion connection is gone, and the channel with it


def bastion_lost(sock: object, exc: BaseException) -> SshError | None:
    """The bastion's failure when a lab machine's handshake over channel ``sock`` broke because the
    bastion connection itself went away (not the lab machine); None when the bastion is still up."""
    if not isinstance(sock, ForwardedSocket) or not isinstance(exc, paramiko.SSHException | EOFError | OSError):
        return None
    transport = sock.channel.get_transport()
    if transport is not None and transport.is_active():
        return None
    return SshError("jump_unreachable", f"the bastion connection broke during the handshake ({exc!r})")


def _answers(transport: paramiko.Transport, seconds: float) -> bool:
    """Whether the bastion answers a keepalive global request (any reply) within ``seconds``."""
    timer = gevent.Timeout(max(0.05, seconds))
    timer.start()
    try:
        transport.global_request("keepalive@openssh.com", wait=True)
        return transport.is_active()
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        return False
    finally:
        timer.close()


def _tcp_connect(target: Target, timeout: float) -> socket.socket:
    sock = socket.create_connection((target.host, target.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock


def _jump_reason(exc: BaseException) -> str:
    """The bastion's failure as a ``jump_*`` reason."""
    if isinstance(exc, SshError):
        return exc.reason if exc.reason.startswith("jump_") else f"jump_{exc.reason}"
    if isinstance(exc, gevent.Timeout | TimeoutError):
        return "jump_timeout"
    if isinstance(exc, paramiko.AuthenticationException):
        return "jump_auth"
    if isinstance(exc, paramiko.SSHException | EOFError | ConnectionResetError):
        return "jump_protocol"
    if isinstance(exc, OSError):  # refused, no route, ...
        return "jump_unreachable"
    return "jump_protocol"
