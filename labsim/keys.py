"""Key material of a simulated lab: one host key per machine, the exporter's login key, known_hosts.

Host keys are cached in the state directory so a restarted lab presents the same keys (a real lab does
not change keys on reboot) unless the "change host key" fault asks for a new one. Ed25519 keys are
generated with ``cryptography`` (paramiko can load but not generate them) in well under a millisecond.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def generate_ed25519(path: Path, comment: str = "") -> None:
    """Write a new OpenSSH-format Ed25519 private key to ``path`` (mode 600) and ``path``.pub."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    tmp.replace(path)
    path.with_name(path.name + ".pub").write_text(public.decode() + (f" {comment}" if comment else "") + "\n")


def load_or_create(path: Path, comment: str = "") -> paramiko.Ed25519Key:
    """The key cached at ``path``; a new one when there is none yet."""
    if not path.exists():
        generate_ed25519(path, comment)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def replace_key(path: Path) -> paramiko.Ed25519Key:
    """A fresh key at ``path``: the host key changed (reinstall, or a man in the middle)."""
    generate_ed25519(path)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def known_hosts_name(ip: str, port: int) -> str:
    """OpenSSH's spelling of a host in known_hosts: bare for port 22, ``[ip]:port`` otherwise."""
    return ip if port == 22 else f"[{ip}]:{port}"


def write_known_hosts(path: Path, entries: Iterable[tuple[str, int, paramiko.PKey]]) -> None:
    """known_hosts listing each (ip, port, host key), written atomically."""
    lines = [f"{known_hosts_name(ip, port)} {key.get_name()} {key.get_base64()}" for ip, port, key in entries]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
