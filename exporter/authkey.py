"""``optilab-exporter authorized-key --from ADDRESS --key KEY.pub``: the monitoring key's line for
``~optilab/.ssh/authorized_keys`` on the lab machines.

The line is ``restrict,from="<collector addresses>" <key>``. ``restrict`` switches off everything
the exporter does not use — port, agent and X11 forwarding, PTY allocation, ~/.ssh/rc — while exec
requests (the batched command, a long-lived ``/bin/sh`` over exec) still work; nothing is added that
would re-enable a PTY or forwarding. ``from=`` makes sshd refuse the key from any other source
address, so a copied private key is useless outside the collectors (or the bastion, when the lab is
reached through one: the lab machines then see the bastion's address).

Input is validated, never pasted into anything: every ``--from`` value must be an IP address or a
CIDR network (``ipaddress``; no host names or wildcards, which would make sshd resolve or guess),
and the key must be one public key line as ``ssh-keygen`` writes it (a known type, base64 whose
blob names the same type, an optional comment). A line that already carries options is refused.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import ipaddress
import re
import struct
import sys
from pathlib import Path

KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
OPTIONS = "restrict"
_COMMENT = re.compile(r"^[\x21-\x7e][\x20-\x7e]*$")  # printable ASCII, no control characters


def parse_sources(values: list[str]) -> list[str]:
    """The ``from=`` patterns: IP addresses or CIDR networks in canonical form; ValueError otherwise."""
    if not values:
        raise ValueError("--from: give the collector's address (an IP address or CIDR network)")
    sources = []
    for value in values:
        for item in value.split(","):
            text = item.strip()
            try:
                sources.append(
                    str(ipaddress.ip_network(text, strict=True)) if "/" in text else str(ipaddress.ip_address(text))
                )
            except ValueError:
                raise ValueError(
                    f"--from: {text!r} is not an IP address or CIDR network (host names and wildcards are not accepted)"
                ) from None
    return sources


def parse_public_key(text: str) -> tuple[str, str, str]:
    """(type, base64, comment) of one OpenSSH public key line; ValueError naming what is wrong."""
    if "PRIVATE KEY" in text:
        raise ValueError("--key: that is a private key; give the public one (KEY.pub)")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise ValueError(f"--key: expected one public key line, found {len(lines)}")
    fields = lines[0].split(None, 2)
    if fields[0] not in KEY_TYPES:
        hint = (
            " (this line already has options; give the plain .pub file)"
            if "=" in fields[0] or "," in fields[0] or fields[0] in ("restrict", "no-pty")
            else ""
        )
        raise ValueError(f"--key: {fields[0][:40]!r} is not a public key type ({', '.join(KEY_TYPES)}){hint}")
    if len(fields) < 2:
        raise ValueError("--key: the key's base64 data is missing")
    key_type, data = fields[0], fields[1]
    try:
        blob = base64.b64decode(data, validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        named = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ValueError("--key: the key's data is not valid base64 of an SSH public key") from None
    if named != key_type:
        raise ValueError(f"--key: the key data is a {named[:40]!r} key, not {key_type!r}")
    comment = fields[2].strip() if len(fields) > 2 else ""
    if comment and not _COMMENT.match(comment):
        comment = ""  # a comment with control characters is dropped, not copied into the file
    return key_type, data, comment


def authorized_key_line(sources: list[str], key_text: str) -> str:
    """``restrict,from="A,B" TYPE DATA [COMMENT]`` for the validated ``sources`` and key."""
    key_type, data, comment = parse_public_key(key_text)
    patterns = ",".join(parse_sources(sources))
    return " ".join(part for part in (f'{OPTIONS},from="{patterns}"', key_type, data, comment) if part)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="optilab-exporter authorized-key",
        description="Print the restricted authorized_keys line for the monitoring key on lab machines.",
    )
    parser.add_argument(
        "--from",
        dest="sources",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="collector (or bastion) address or CIDR network sshd accepts the key from; repeat for several",
    )
    parser.add_argument("--key", required=True, type=Path, metavar="KEY.pub", help="the monitoring public key")
    args = parser.parse_args(argv)
    try:
        text = args.key.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        print(
            f"optilab-exporter authorized-key: --key: cannot read {args.key}: {getattr(exc, 'strerror', None) or exc}",
            file=sys.stderr,
        )
        return 2
    try:
        line = authorized_key_line(args.sources, text)
    except ValueError as exc:
        print(f"optilab-exporter authorized-key: {exc}", file=sys.stderr)
        return 2
    print(line)
    return 0
