"""The flags every OptiLab service shares, spelled as in exporter-toolkit and Prometheus.

``add_web_flags`` gives ``--web.listen-address`` (alias ``--listen``) and ``--web.config.file``;
``add_log_flags`` gives ``--log.level`` (alias ``--log-level``, any case) and ``--log.format``;
``add_version`` gives ``--version``. Bad values are argparse usage errors (one line, exit 2).
:func:`parse_listen` is the one reading of HOST:PORT for every service.
"""

from __future__ import annotations

import argparse
import ipaddress
import ssl

from optilab.toolkit import logs
from optilab.toolkit.version import version_text
from optilab.toolkit.webconfig import WebConfig, WebConfigError, load_web_config, ssl_context


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT``; the host is required (``0.0.0.0`` means every interface),
    the port is 0..65535 (0 asks the kernel for a free one). ValueError names what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r} is not HOST:PORT with a port from 0 to 65535")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"{text!r}: an IPv6 host goes in brackets, e.g. [::1]:{port}")
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} in brackets is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets, e.g. [::1]:{port}")
    if not host:
        raise ValueError(f"{text!r} has no host: give 127.0.0.1 (this machine) or 0.0.0.0 (every interface)")
    return host, int(port)


def _listen_type(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _level_type(text: str) -> int:
    try:
        return logs.parse_level(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_web_flags(parser: argparse.ArgumentParser, default_listen: str, tls: bool = True) -> None:
    parser.add_argument(
        "--web.listen-address",
        "--listen",
        dest="listen",
        type=_listen_type,
        default=parse_listen(default_listen),
        metavar="HOST:PORT",
        help=f"address to serve on (default {default_listen}; port 0 picks a free one)",
    )
    what = "TLS and basic auth" if tls else "basic auth (TLS: put a reverse proxy in front, see README)"
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        default="",
        help=f"exporter-toolkit web config YAML for {what}",
    )


def add_log_flags(parser: argparse.ArgumentParser, default: str = "info") -> None:
    parser.add_argument(
        "--log.level",
        "--log-level",
        dest="log_level",
        type=_level_type,
        default=logs.parse_level(default),
        metavar="LEVEL",
        help=f"debug, info, warn or error, any case (default {default})",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=logs.FORMATS,
        default="logfmt",
        help="logfmt (default) or json, one record per line on stderr",
    )


def add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version", action="version", version=version_text(parser.prog), help="print the version and exit"
    )


def setup_logging(args: argparse.Namespace) -> None:
    logs.setup(args.log_level, args.log_format)


def web_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace, tls: bool = True
) -> tuple[WebConfig, ssl.SSLContext | None]:
    """Load ``--web.config.file`` (and its TLS files) or end with an error naming the field (exit 2)."""
    try:
        config = load_web_config(args.web_config_file or None)
        context = ssl_context(config.tls) if config.tls is not None and tls else None
    except WebConfigError as exc:
        parser.exit(2, f"{parser.prog}: --web.config.file: {exc}\n")
    if config.tls is not None and not tls:
        parser.exit(
            2,
            f"{parser.prog}: --web.config.file: {config.source}: tls_server_config: this service "
            f"runs under waitress, which does not speak TLS; terminate TLS in a reverse proxy "
            f"(README, 'TLS') and keep basic_auth_users here\n",
        )
    return config, context
