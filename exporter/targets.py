"""Target identity: ``HOST:PORT`` strings, parsed strictly because they arrive from HTTP requests.

A target is what the exporter dials and what Prometheus calls ``instance``; its string form always
writes the port (``127.0.1.5:22``, ``[::1]:22``) so one machine has exactly one identity. Anything
that is not a plain host name or IP address with a valid port is refused here, before any lookup.
:class:`HostLabels` is who the machine behind a target is (hostname, ip, department).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")


class TargetError(ValueError):
    """A ``HOST[:PORT]`` string that is not a host name or address with a valid port."""


@dataclass(frozen=True, order=True)
class Target:
    """A machine to probe; its identity string is ``HOST:PORT`` with the port always written."""

    host: str
    port: int

    @property
    def is_address(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class HostLabels:
    """Who a host is in the lab; ``ip`` is the target address without the port. Metrics label
    their series with it and health events carry it (exporter/events.py)."""

    hostname: str
    ip: str
    department: str

    @property
    def values(self) -> tuple[str, str, str]:
        """(hostname, ip, department): the lab labels' values in the order metrics name them."""
        return (self.hostname, self.ip, self.department)


def parse_target(text: str, default_port: int) -> Target:
    """Parse ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address; raise TargetError."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise TargetError("is not HOST[:PORT]")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    if ":" in host:
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise TargetError("is not a valid IPv6 address") from None
    elif not _HOSTNAME.match(host):
        raise TargetError("is not a host name or IP address")
    if port_text == "" and text.endswith(":"):
        raise TargetError("has an empty port")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise TargetError(f"has an invalid port {port_text!r}")
        port = int(port_text)
    return Target(host.rstrip(".").lower(), port)
