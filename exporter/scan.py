"""``optilab-exporter scan CIDR``: find the SSH machines of a subnet and merge them into the inventory.

Discovery is the admin's explicit act on a network they name, so it is bounded: networks larger than
a /16 need ``--allow-large``, every TCP probe has a short timeout, at most ``--concurrency`` probes
run at once and at most the pool's ``max_concurrent_dials`` handshakes (sshd's MaxStartups drops
connections beyond that). Each open port then gets one SSH login with the inventory's key and
host-key policy (``--accept-new`` is the explicit opt-in to trust on first use) that reads
``uname -n`` and /etc/os-release: a host whose key cannot be verified is reported, never added.

Merging never loses anything: known hosts get their hostname and OS name (an informational ``os``
field) updated in place, hosts inside a department's ``subnets`` join that department, the rest go to
``--department``, and every other key of the file is kept (YAML comments are not: PyYAML does not
keep them). The merged file is validated with the exporter's own config parser before it atomically
replaces the old one. When the inventory names a bastion (``--department``'s ``jump``, else
``ssh.jump``), the whole scan runs through it: every port probe is a ``direct-tcpip`` channel of one
bastion connection (the bastion, not the collector, connects to the addresses) and every login
goes through it like the exporter's (exporter/jump.py). With a ``rabbitmq`` section in the
inventory, every host that logged in is also published as a ``discovery`` event
(docs/interfaces.md), its OS as os-release's NAME and VERSION_ID.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gevent.pool
import yaml
from tqdm import tqdm

from optilab.exporter.config import (
    ConfigError,
    JumpSettings,
    PoolSettings,
    RabbitSettings,
    SshSettings,
    Target,
    TargetError,
    load_config,
    parse_config,
    parse_target,
)
from optilab.exporter.events import discovery_event, publish_discoveries
from optilab.exporter.parsers_host import parse_osrelease
from optilab.exporter.ssherror import SshError
from optilab.exporter.sshpool import SshPool

#: what a discovered host is asked; a constant, nothing from input reaches the shell
DISCOVERY_COMMAND = "uname -n; cat /etc/os-release"
LARGEST_PREFIX = 16


@dataclass(frozen=True)
class Found:
    """One address whose SSH port answered; ``hostname`` is set when the login worked."""

    target: Target
    hostname: str | None = None
    os: str | None = None  # PRETTY_NAME, what the inventory keeps
    error: str | None = None
    os_type: str | None = None  # NAME and VERSION_ID, what a discovery event carries
    os_version: str | None = None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="optilab-exporter scan",
        description="Find the SSH machines of a subnet and merge them into an inventory file.",
    )
    parser.add_argument("cidr", metavar="CIDR", help="network to scan, e.g. 127.0.1.0/24")
    parser.add_argument("--department", default="discovered", help="department for new hosts")
    parser.add_argument("--port", type=int, help="SSH port (default: the inventory's ssh.port, else 22)")
    parser.add_argument("--out", type=Path, help="inventory file to create or merge into (else: stdout)")
    parser.add_argument("--config", type=Path, help="inventory whose ssh settings log in (default: --out)")
    parser.add_argument("--user", help="login user when no inventory gives one")
    parser.add_argument("--key-file", type=Path, help="private key when no inventory gives one")
    parser.add_argument("--known-hosts", type=Path, help="known_hosts when no inventory gives one")
    parser.add_argument(
        "--accept-new", action="store_true", help="trust unknown host keys on first use (saved to known_hosts)"
    )
    parser.add_argument("--timeout", type=float, default=0.5, help="TCP connect timeout, s (default 0.5)")
    parser.add_argument("--concurrency", type=int, default=256, help="parallel TCP probes (default 256)")
    parser.add_argument("--allow-large", action="store_true", help=f"scan networks larger than /{LARGEST_PREFIX}")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def check_network(text: str, allow_large: bool) -> list[str]:
    """The addresses to probe; a clear ValueError for a bad or (without the flag) too large network."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not a network (example: 127.0.1.0/24)") from None
    largest = LARGEST_PREFIX if network.version == 4 else LARGEST_PREFIX + 96
    if network.prefixlen < largest and not allow_large:
        raise ValueError(
            f"{network} has {network.num_addresses} addresses; networks larger than /{largest} need --allow-large"
        )
    return [str(address) for address in (list(network.hosts()) or [network.network_address])]


def tcp_open(target: Target, timeout: float) -> bool:
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            return True
    except OSError:
        return False


def identify(output: str, target: Target) -> Found:
    """The host as DISCOVERY_COMMAND's output describes it: hostname, OS pretty name, name, version."""
    first, _, rest = output.partition("\n")
    if not first.strip():
        raise ValueError("empty uname -n")
    release = parse_osrelease(rest)
    name = release.get("NAME", release["ID"])
    pretty = release.get("PRETTY_NAME") or f"{name} {release.get('VERSION_ID')}"
    return Found(target, first.strip(), pretty.strip(), os_type=name, os_version=release.get("VERSION_ID"))


def scan(
    addresses: list[str],
    port: int,
    ssh: SshSettings,
    timeout: float,
    concurrency: int,
    progress: Any = None,
    jump: JumpSettings | None = None,
) -> list[Found]:
    """Probe every address concurrently (through ``jump`` when given); log in to those that answer.
    Needs gevent monkey patching (exporter/__main__.py)."""
    pool = SshPool(ssh, PoolSettings(), route=lambda target: jump)
    found: list[Found] = []

    def port_open(target: Target) -> bool:
        if jump is None:
            return tcp_open(target, timeout)
        try:  # the bastion connects; a refusal or silence there is a closed port, a jump_* error is not
            pool.jumps.open_channel(jump, target, timeout).close()
        except SshError as exc:
            if exc.reason.startswith("jump_"):
                raise
            return False
        return True

    def probe(address: str) -> None:
        target = Target(address, port)
        try:
            try:
                if not port_open(target):
                    return
            except SshError as exc:
                found.append(Found(target, error=exc.reason))
                return
            try:
                output = pool.run(
                    target, DISCOVERY_COMMAND, time.monotonic() + ssh.connect_timeout + ssh.command_timeout
                )
                found.append(identify(output, target))
            except SshError as exc:
                found.append(Found(target, error=explain(exc.reason, exc.detail, ssh)))
            except (ValueError, KeyError) as exc:
                found.append(Found(target, error=f"parse: {exc}"))
        finally:
            if progress is not None:
                progress.update(1)

    workers = gevent.pool.Pool(max(1, concurrency))
    try:
        workers.map(probe, addresses)
    finally:
        pool.close()
    return sorted(found, key=lambda f: ipaddress.ip_address(f.target.host))


def explain(reason: str, detail: str, ssh: SshSettings) -> str:
    """``reason (why, with the file that decided it)`` for the report of a host that was not added."""
    if reason == "hostkey":
        return f"hostkey ({detail})" if detail else f"hostkey (checked against {ssh.known_hosts})"
    if reason == "auth":
        how = f"key {ssh.key_file}" if ssh.key_file else "a password"
        return f"auth (login as {ssh.user} with {how} refused)"
    return f"{reason} ({detail})" if detail else reason


def _absolute(ssh_section: dict[str, Any]) -> dict[str, Any]:
    """key_file and known_hosts as absolute paths, so the inventory works from any directory."""
    for key in ("key_file", "known_hosts"):
        if ssh_section.get(key):
            ssh_section[key] = str(Path(str(ssh_section[key])).expanduser().resolve())
    return ssh_section


def merge_inventory(
    raw: dict[str, Any], found: list[Found], department: str, ssh_port: int
) -> tuple[dict[str, Any], int, int]:
    """Add or update every logged-in host in ``raw`` (modified in place); returns (raw, added, updated)."""
    departments = raw.setdefault("departments", {})
    known: dict[str, tuple[list[Any], int]] = {}
    subnets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
    for name, body in departments.items():
        body = body if isinstance(body, dict) else {}
        for index, item in enumerate(body.get("hosts") or []):
            text = item.get("target") if isinstance(item, dict) else item
            try:
                known[str(parse_target(str(text), ssh_port))] = (body["hosts"], index)
            except TargetError:
                continue  # the validation below names it
        for subnet in body.get("subnets") or []:
            try:
                subnets.append((ipaddress.ip_network(str(subnet)), name))
            except ValueError:
                continue
    added = updated = 0
    for host in found:
        if host.hostname is None:
            continue
        text = host.target.host if host.target.port == ssh_port else str(host.target)
        if str(host.target) in known:
            hosts, index = known[str(host.target)]
            item = hosts[index]
            merged = {**(item if isinstance(item, dict) else {"target": item}), **_learned(host)}
            if merged != item:
                hosts[index] = merged
                updated += 1
            continue
        owner = department
        if host.target.port == ssh_port:
            address = ipaddress.ip_address(host.target.host)
            owner = next((name for net, name in subnets if address in net), department)
        body = departments.setdefault(owner, {})
        body.setdefault("hosts", []).append({"target": text, **_learned(host)})
        added += 1
    return raw, added, updated


def _learned(host: Found) -> dict[str, str]:
    """The inventory fields a login taught us: the hostname, and the OS name when os-release had one."""
    return {"hostname": host.hostname or "", **({"os": host.os} if host.os else {})}


def ssh_settings(
    args: argparse.Namespace,
) -> tuple[dict[str, Any], SshSettings, RabbitSettings | None, JumpSettings | None]:
    """The raw inventory to merge into (or a new one), the SSH settings that log in, where to
    publish discovery events (the inventory's ``rabbitmq`` section, if any) and the bastion to scan
    through (``--department``'s own ``jump``, else ``ssh.jump``; None: directly)."""
    raw: dict[str, Any] = {}
    rabbitmq = jump = None
    if args.out is not None and args.out.exists():
        raw = yaml.safe_load(args.out.read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{args.out}: not a YAML mapping; refusing to merge into it")
    source = args.config or (args.out if raw else None)
    if source is not None:
        config = load_config(source)
        ssh, rabbitmq = config.ssh, config.rabbitmq
        jump = config.inventory.jumps.get(args.department, ssh.jump)
        if not raw:  # a new file logs in like the inventory it was scanned with
            raw = {"ssh": _absolute(dict(yaml.safe_load(source.read_text())["ssh"]))}
    else:
        ssh = SshSettings(
            user=args.user or "optilab",
            port=args.port or 22,
            key_file=(args.key_file or Path("~/.ssh/id_ed25519")).expanduser(),
            known_hosts=(args.known_hosts or Path("~/.ssh/known_hosts")).expanduser(),
        )
        raw = {
            "ssh": _absolute(
                {
                    "user": ssh.user,
                    "port": ssh.port,
                    "key_file": str(ssh.key_file),
                    "known_hosts": str(ssh.known_hosts),
                    "host_key_policy": "strict",
                }
            )
        }
    if args.accept_new:
        ssh = replace(ssh, host_key_policy="accept-new")
    return raw, ssh, rabbitmq, jump


def discovery_events(found: list[Found], merged: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``discovery`` event per host that logged in, with the department the merge gave it."""
    inventory = parse_config(merged, "<merged>").inventory
    events = []
    for host in found:
        entry = inventory.lookup(host.target)
        if host.hostname is not None and entry is not None:
            events.append(
                discovery_event(
                    str(host.target), host.hostname, host.target.host, entry.department, host.os_type, host.os_version
                )
            )
    return events


def write_inventory(path: Path, raw: dict[str, Any]) -> None:
    """Validate with the exporter's parser, then replace ``path`` atomically (nothing half-written)."""
    parse_config(raw, str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
    tmp.replace(path)


def main(argv: list[str]) -> int:
    """``optilab-exporter scan``; runs in the process exporter/__main__.py has patched for gevent."""
    args = parse_args(argv)
    try:
        addresses = check_network(args.cidr, args.allow_large)
        raw, ssh, rabbitmq, jump = ssh_settings(args)
    except (ValueError, ConfigError, OSError) as exc:
        print(f"optilab-exporter scan: {exc}", file=sys.stderr)
        return 2
    port = args.port or ssh.port
    how = f"key {ssh.key_file}" if ssh.key_file else "a password"
    print(
        f"logging in as {ssh.user} with {how}; host keys checked against {ssh.known_hosts} "
        f"(host_key_policy {ssh.host_key_policy})",
        file=sys.stderr,
    )
    started = time.monotonic()
    with tqdm(
        total=len(addresses), desc=f"scan {args.cidr}", unit="addr", file=sys.stderr, disable=args.quiet
    ) as progress:
        found = scan(addresses, port, ssh, args.timeout, args.concurrency, progress, jump)
    elapsed = time.monotonic() - started
    bastion_errors = sorted({host.error for host in found if host.error and host.error.startswith("jump_")})
    if jump is not None and bastion_errors and not any(host.hostname for host in found):
        print(
            f"optilab-exporter scan: bastion {jump} failed ({', '.join(bastion_errors)}); nothing scanned, "
            f"nothing written",
            file=sys.stderr,
        )
        return 1
    raw, added, updated = merge_inventory(raw, found, args.department, ssh.port)
    for host in found:
        status = f"{host.hostname}  {host.os}" if host.hostname else f"not added: {host.error}"
        print(f"{host.target}  {status}", file=sys.stderr)
    try:
        if not raw.get("departments"):
            print("optilab-exporter scan: no host to add; nothing written", file=sys.stderr)
        elif args.out is not None:
            write_inventory(args.out, raw)
        else:
            parse_config(raw, "<stdout>")
            sys.stdout.write(yaml.safe_dump(raw, sort_keys=False))
    except ConfigError as exc:
        print(f"optilab-exporter scan: merged inventory is invalid, nothing written:\n{exc}", file=sys.stderr)
        return 1
    if rabbitmq is not None and raw.get("departments"):
        published, dropped = publish_discoveries(rabbitmq, discovery_events(found, raw))
        print(f"discovery events: {published} published, {dropped} dropped", file=sys.stderr)
    answered = sum(1 for host in found if host.hostname)
    print(
        f"{len(addresses)} addresses in {elapsed:.2f}s: {len(found)} SSH ports open, {answered} logged in; "
        f"{added} added, {updated} updated" + (f" in {args.out}" if args.out else ""),
        file=sys.stderr,
    )
    return 0
