"""The fresh-login signal: does a new SSH login to a host still work, while scrapes ride a pooled one?

A long-lived pooled connection (and the shell on it) keeps answering after the things a new login
needs have broken: the key removed from ``authorized_keys``, the account expired or locked, sshd
refusing new sessions, a home directory that is missing, read-only or full. Students meet those at
their next login, so the exporter tries one itself, on its own interval
(``ssh.session.login_check_interval``, default 5 min):

* a **new connection** (TCP, key exchange, host key check, authentication — sshd checks the account
  here), through the pool's own dial (same caps, same host key store);
* one **exec** of :data:`LOGIN_CHECK_COMMAND` through the account's login shell, which goes to the
  home directory and writes and removes one byte there (a full or read-only home fails it);
* success means exit output ``optilab-login-ok``; the connection is closed afterwards.

A connection the pool dials for a scrape that then answers is a fresh login too, and counts as a
successful check (so a cold start does not dial every host twice). Checks run in their own
greenlets, started from a scrape of that host but never waited for: a scrape never slows down for
one. Results are exported per host by ``exporter/metrics_session.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gevent

from optilab.exporter.ssherror import SshError
from optilab.exporter.targets import Target

if TYPE_CHECKING:
    from optilab.exporter.sshpool import SshPool

log = logging.getLogger("optilab.exporter.logincheck")

LOGIN_CHECK_COMMAND = "cd && printf x > .optilab-login-check && rm -f .optilab-login-check && echo optilab-login-ok"
LOGIN_CHECK_OK = "optilab-login-ok"


@dataclass(frozen=True)
class LoginResult:
    success: bool
    timestamp: float  # wall-clock (Unix) time the check ended
    duration: float
    reason: str | None = None  # a probe error reason, or "check" when the command itself failed


class LoginChecks:
    """Per-host schedule and last result of the fresh-login check for one pool."""

    def __init__(
        self,
        pool: SshPool,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool, self.interval, self._clock, self._wall = pool, interval, clock, wall_clock
        self.enabled = False
        self.results: dict[Target, LoginResult] = {}
        self._due: dict[Target, float] = {}
        self._running: dict[Target, gevent.Greenlet] = {}

    def maybe_start(self, target: Target) -> None:
        """Called at each scrape of ``target``: start a check in the background when one is due."""
        if not self.enabled or self.interval <= 0 or target in self._running:
            return
        now = self._clock()
        due = self._due.setdefault(target, now + self.interval)  # first contact: the scrape's dial tells
        if now < due:
            return
        if self.pool._open_slots.locked():  # the pool is at its connection cap: scrapes come first
            return
        self._due[target] = now + self.interval
        self._running[target] = gevent.spawn(self._check, target)

    def record_pooled_login(self, target: Target) -> None:
        """A connection the pool dialled for a scrape has answered: that was a fresh login."""
        if self.enabled:
            self.results[target] = LoginResult(True, self._wall(), 0.0)
            self._due[target] = self._clock() + self.interval

    def check_now(self, target: Target) -> LoginResult:
        """One check of ``target``, here and now (what the background greenlet runs)."""
        ssh = self.pool.ssh
        started = self._clock()
        connection = None
        reason: str | None = None
        try:
            with gevent.Timeout(ssh.connect_timeout + ssh.command_timeout, SshError("timeout", "login check")):
                connection = self.pool._dial(target)
                output = connection.run(LOGIN_CHECK_COMMAND, 4096)
            if output.strip() != LOGIN_CHECK_OK:
                reason = "check"
        except SshError as exc:
            reason = exc.reason
        except Exception as exc:  # paramiko and socket errors of the exec
            reason = "protocol"
            log.debug("%s: login check failed: %r", target, exc)
        finally:
            if connection is not None:
                self.pool._close(connection, "login_check")
        result = LoginResult(reason is None, self._wall(), self._clock() - started, reason)
        previous = self.results.get(target)
        if not result.success and (previous is None or previous.success):
            log.warning("%s: a fresh SSH login failed (%s) — pooled scrapes may still work", target, reason)
        self.results[target] = result
        return result

    def stop(self) -> None:
        for greenlet in list(self._running.values()):
            greenlet.kill(block=False)
        self._running.clear()

    def _check(self, target: Target) -> None:
        try:
            self.check_now(target)
        except Exception:
            log.exception("%s: login check crashed", target)
        finally:
            self._running.pop(target, None)
