"""Host key verification against an OpenSSH known_hosts file.

Two policies, as OpenSSH's ``StrictHostKeyChecking``:

* ``strict``: only keys already in known_hosts are accepted (an unknown host is refused);
* ``accept-new``: an unknown host's key is trusted on first use and appended to known_hosts.

Under both, a host whose key differs from the one on file is refused (reason ``hostkey``): that is
what a man-in-the-middle looks like, and accept-new never overwrites a known key.

Entries use OpenSSH's names, ``host`` for port 22 and ``[host]:port`` otherwise, and may be hashed
(``|1|...``, as ``ssh-keyscan -H`` writes them): ``ssh-keyscan -p 2222 host >> known_hosts`` and
this store agree. The file is re-read when its mtime changes, so an admin can add keys while the
exporter runs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import paramiko

from optilab.exporter.ssherror import SshError
from optilab.exporter.targets import Target

log = logging.getLogger("optilab.exporter.hostkeys")


def known_hosts_name(target: Target) -> str:
    """The name OpenSSH files a host's key under."""
    return target.host if target.port == 22 else f"[{target.host}]:{target.port}"


class HostKeyStore:
    def __init__(self, path: Path, policy: str) -> None:
        self.path, self.policy = path, policy
        self._keys = paramiko.HostKeys()
        self._mtime: float | None = None

    def prefer_known_types(self, target: Target, transport: paramiko.Transport) -> None:
        """Ask the server for a key type we have on file, so a host with several keys verifies."""
        known = self._lookup(target)
        if known:
            options = transport.get_security_options()
            options.key_types = [t for t in known if t in options.key_types] + [
                t for t in options.key_types if t not in known
            ]

    def verify(self, target: Target, key: paramiko.PKey) -> None:
        """Accept ``key`` for ``target`` or raise SshError("hostkey")."""
        name = known_hosts_name(target)
        known = self._lookup(target)
        if known:
            if known.get(key.get_name()) == key:
                return
            raise SshError(
                "hostkey",
                f"{name} offered a {key.get_name()} key {_fingerprint(key)} that does "
                f"not match {self.path}; refusing (changed host key?)",
            )
        if self.policy != "accept-new":
            raise SshError(
                "hostkey",
                f"{name} is not in {self.path} (host_key_policy strict; add it with ssh-keyscan or use accept-new)",
            )
        self._append(name, key)

    def _lookup(self, target: Target) -> dict[str, paramiko.PKey] | None:
        self._refresh()
        known = self._keys.lookup(known_hosts_name(target))
        return dict(known) if known else None

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        keys = paramiko.HostKeys()
        if mtime is not None:
            try:
                keys.load(str(self.path))
            except (OSError, paramiko.SSHException) as exc:
                log.error("cannot read known_hosts %s: %s; keeping the keys read before", self.path, exc)
                return
        self._keys, self._mtime = keys, mtime

    def _append(self, name: str, key: paramiko.PKey) -> None:
        """Trust on first use: one line appended (never rewriting the file), then remembered."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = f"{name} {key.get_name()} {key.get_base64()}\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(line)
        self._keys.add(name, key.get_name(), key)
        self._mtime = self.path.stat().st_mtime
        log.warning(
            "accept-new: trusted new host key of %s (%s %s), saved to %s",
            name,
            key.get_name(),
            _fingerprint(key),
            self.path,
        )


def _fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..." like ssh-keygen -l
